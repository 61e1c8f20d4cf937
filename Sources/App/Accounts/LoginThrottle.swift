import Crypto
import Fluent
import Foundation
import SQLKit
import Vapor

/// Limits on password guessing that cap guesses and cannot be turned against an account's owner.
///
/// Every attempt is counted before its password is checked, in one atomic step with the check of
/// its budget (so concurrent attempts cannot all slip through), and given back when the password
/// was right: only failures cost. Which budget an attempt spends depends on its client:
/// - a **known** client — a browser holding this account's device cookie, or an address that
///   signed in to the account within ``LoginClients/memory`` — has a tight budget of its own
///   (`perKnownClient`), so the owner gets in while the account is under attack, even after a typo;
/// - every **unknown** client shares one loose budget per account (`perAccount`): an attacker's
///   thousand addresses (or IPv6 /64s) get what one would. Once it is spent, unknown clients get
///   429 before their password is checked.
///
/// The device cookie only chooses the budget a failure counts against; it never authenticates.
/// The API and the admin each have their own throttle, so a flood at one does not close the other.
struct LoginThrottle: Sendable {
    let limiter: RateLimiter
    /// Failures per account from one known client.
    let perKnownClient: RateLimitPolicy
    /// Failures per account from every unknown client together.
    let perAccount: RateLimitPolicy
    let devices: LoginDevices
    let clients: LoginClients

    /// An attempt, counted: to be given back when its password was right.
    struct Attempt: Sendable {
        var email: String
        var client: String
        var device: String?
        var decision: RateLimitDecision?
    }

    /// Counts an attempt for `email` from the request's client against the budget that client has;
    /// throws ``RateLimitExceeded`` when that budget is spent (nothing is checked then).
    func begin(email: String, request: Request) async throws -> Attempt {
        let client = request.clientKey
        let device = devices.device(in: request, for: email)
        let decision: RateLimitDecision?
        if let device {
            decision = try await limiter.check(perKnownClient, key: "device\u{0}" + device + "\u{0}" + email, coarser: email, for: nil)
        } else if try await clients.knows(client, for: email, on: request.db) {
            decision = try await limiter.check(perKnownClient, key: "address\u{0}" + client + "\u{0}" + email, coarser: email, for: nil)
        } else {
            decision = try await limiter.check(perAccount, key: email, for: nil)
        }
        return Attempt(email: email, client: client, device: device, decision: decision)
    }

    /// The password was right, for a signed-in account (a password change, a deletion): the
    /// attempt costs nothing.
    func passed(_ attempt: Attempt) async throws {
        try await limiter.refund(attempt.decision)
    }

    /// The password was right: the attempt costs nothing, the client is known for the account from
    /// now on, and `response` carries the device cookie (renewed).
    func succeeded(_ attempt: Attempt, response: Response, on db: any Database) async throws {
        try await limiter.refund(attempt.decision)
        try await clients.remember(attempt.client, for: attempt.email, on: db)
        let (name, cookie) = devices.cookie(for: attempt.email, device: attempt.device)
        response.cookies[name] = cookie
    }
}

/// The signed, per-account device cookie of ``LoginThrottle``: `<id>.<mac>`, the MAC binding the
/// random id to the account's email under a key derived from `SECRET_KEY`. HttpOnly,
/// SameSite=Strict, sent only to the sign-in's own path.
struct LoginDevices: Sendable {
    private let key: SymmetricKey
    let cookiePrefix: String
    let path: String
    let secure: Bool

    /// How long a browser stays known (browsers keep a cookie 400 days at most).
    static let lifetime = 400 * 86_400

    init(secretKey: String, cookiePrefix: String, path: String, secure: Bool) {
        key = SymmetricKey(data: SHA256.hash(data: Data(("login-device\u{0}" + secretKey).utf8)))
        self.cookiePrefix = cookiePrefix
        self.path = path
        self.secure = secure
    }

    /// One cookie per account: its name carries a short hash of the email.
    func cookieName(for email: String) -> String {
        cookiePrefix + SHA256.hash(data: Data(email.utf8)).prefix(6).map { String(format: "%02x", $0) }.joined()
    }

    /// The device id of the request's cookie for `email`, when its MAC holds.
    func device(in request: Request, for email: String) -> String? {
        guard let value = request.cookies[cookieName(for: email)]?.string, value.utf8.count <= 100 else { return nil }
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].utf8.count == 22, Secrets.constantTimeEqual(String(parts[1]), mac(String(parts[0]), email)) else {
            return nil
        }
        return String(parts[0])
    }

    /// The cookie that makes this browser known for `email` (its device id kept, or a new one).
    func cookie(for email: String, device: String?) -> (name: String, value: HTTPCookies.Value) {
        let id = device ?? Secrets.base64URL(Data((0..<16).map { _ in UInt8.random(in: 0...255) }))
        return (cookieName(for: email), HTTPCookies.Value(string: id + "." + mac(id, email), maxAge: Self.lifetime, path: path,
                                                          isSecure: secure, isHTTPOnly: true, sameSite: .strict))
    }

    private func mac(_ id: String, _ email: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data((id + "\u{0}" + email).utf8), using: key)
        return Secrets.base64URL(Data(code).prefix(16))
    }
}

/// The addresses (IPv4, or IPv6 /64) that signed in to an account lately, in the database (shared
/// by every instance): one row per account and client that ever got the password right, keyed by a
/// hash of both. Only successes make rows, so attackers cannot grow it; `cleanup` drops old ones.
struct LoginClients: Sendable {
    let clock: any WallClock
    /// How long an address that signed in stays known.
    static let memory: TimeInterval = 30 * 86_400

    static func key(_ client: String, _ email: String) -> String {
        SHA256.hash(data: Data((email + "\u{0}" + client).utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    func knows(_ client: String, for email: String, on db: any Database) async throws -> Bool {
        let cutoff = clock.now().addingTimeInterval(-Self.memory)
        return try await db.sql().select().column("key").from("login_clients")
            .where("key", .equal, SQLBind(Self.key(client, email)))
            .where("last_success_at", .greaterThan, SQLBind(cutoff))
            .first() != nil
    }

    func remember(_ client: String, for email: String, on db: any Database) async throws {
        try await db.sql().insert(into: "login_clients").columns("key", "last_success_at")
            .values(SQLBind(Self.key(client, email)), SQLBind(clock.now()))
            .onConflict(with: ["key"]) { $0.set(excludedValueOf: "last_success_at") }
            .run()
    }

    /// Rows older than ``memory`` (for `cleanup`).
    static func forget(before date: Date, on db: any Database) async throws -> Int {
        try await db.sql().delete(from: "login_clients").where("last_success_at", .lessThan, SQLBind(date)).returning("key").all().count
    }
}

/// Creates `login_clients` (``LoginClients``).
struct CreateLoginClients: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema("login_clients")
            .field("key", .string, .identifier(auto: false))
            .field("last_success_at", .datetime, .required)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema("login_clients").delete()
    }
}
