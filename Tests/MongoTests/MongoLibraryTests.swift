import Mongo
import Testing

@Suite struct MongoLibraryTests {
    @Test func initialisingTwiceFromManyTasksIsSafeAndReportsTheLinkedVersion() async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<16 { group.addTask { MongoLibrary.initialize() } }
        }
        let parts = MongoLibrary.version.split(separator: ".").compactMap { Int($0) }
        #expect(parts.count == 3)
        // The binding is written against libmongoc 1.x (Debian 12 ships 1.23).
        #expect(parts.first == 1)
        #expect((parts.dropFirst().first ?? 0) >= 17)
    }
}
