/// Who a verified token speaks for: the OIDC claims the shop reads.
public struct ShopPrincipal: Sendable, Hashable {
    /// `sub`: the purchase's `userid`.
    public var userid: String
    /// `preferred_username`: the purchase's `username`, the list's path segment.
    public var username: String
    /// `scope` contains `shop:admin`: may read any user's list and receipts.
    public var isAdmin: Bool

    public init(userid: String, username: String, isAdmin: Bool = false) {
        self.userid = userid
        self.username = username
        self.isAdmin = isAdmin
    }

    /// The scope that lets a principal read every user's purchases.
    public static let adminScope = "shop:admin"

    /// Whether this principal may read `username`'s list.
    public func mayRead(username: String) -> Bool {
        isAdmin || self.username == username
    }

    /// Whether this principal may read a purchase that `userid` made.
    public func mayRead(purchaseOf userid: String) -> Bool {
        isAdmin || self.userid == userid
    }
}
