internal import CMongoC

/// The process-wide libmongoc runtime.
///
/// libmongoc requires `mongoc_init()` to run exactly once before any other call and
/// `mongoc_cleanup()` at most once at exit. Swift's lazy `static let` initialisation is
/// thread-safe and runs once, which is exactly that guarantee.
public enum MongoLibrary {
    private static let initialized: Bool = {
        mongoc_init()
        return true
    }()

    /// Initialises libmongoc if this process has not done so yet. Safe to call from any thread,
    /// any number of times.
    public static func initialize() {
        _ = initialized
    }

    /// The version of the libmongoc the process is linked against, e.g. `1.23.1`.
    public static var version: String {
        initialize()
        return String(cString: mongoc_get_version())
    }
}
