public import PurchaseDomain

/// Who a verified token speaks for: the OIDC claims the shop reads.
///
/// Who may buy and read is decided by `sub`, the one claim OIDC promises is stable and unique
/// for a user of an issuer (OpenID Connect Core 1.0, section 5.7): `preferred_username` may change
/// and may be handed to someone else, so it is carried as the purchase's display name and never
/// grants anything. Names are compared byte for byte, as MongoDB compares them.
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

    /// Whose purchases a list shows this principal, whatever username it names: its own
    /// (`userid`), or everyone's (`nil`) with the admin scope. A username that moves to another
    /// subject therefore shows the new holder only the new holder's purchases.
    public var listedUserid: String? {
        isAdmin ? nil : userid
    }

    /// Whether this principal may read a purchase that `userid` made.
    public func mayRead(purchaseOf userid: String) -> Bool {
        isAdmin || self.userid.hasSameBytes(as: userid)
    }

    /// Why this principal may not make `purchase`, one reason per field, or `nil` when it may: a
    /// purchase is made only as oneself, the token's `sub` as its userid and its
    /// `preferred_username` as its username.
    public func refusal(toBuy purchase: Purchase) -> [FieldError]? {
        var errors: [FieldError] = []
        if !userid.hasSameBytes(as: purchase.userid) {
            errors.append(FieldError(field: "userid", reason: "must be the signed-in user's (the token's sub)"))
        }
        if !username.hasSameBytes(as: purchase.username) {
            errors.append(
                FieldError(field: "username", reason: "must be the signed-in user's (the token's preferred_username)"))
        }
        return errors.isEmpty ? nil : errors
    }
}
