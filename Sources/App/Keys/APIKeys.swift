import Crypto
import Fluent
import Foundation
import NIOConcurrencyHelpers
import SQLKit

/// Personal API keys: made, listed and revoked by their owner; recognised on the requests that
/// carry one.
///
/// A key's secret is `csk_` and 43 characters of base64url (256 random bits), shown once. The
/// database keeps an HMAC-SHA256 of it under a key derived from `SECRET_KEY` — a fast keyed hash
/// is right for a secret of that entropy (no bcrypt on every request), and a stolen database gives
/// no usable key. Recognised keys are kept in memory for ``maxAge``; a revocation (or any change to
/// the account) forgets its owner's at once, here and — over the event bus — on every instance.
/// `last_used_at` is written at most once a minute per key, never once per request.
final class APIKeys: Sendable {
    /// Who a key's request acts as, and what it reaches.
    struct Identity: Sendable, Equatable {
        var keyID: UUID
        var userID: UUID
        var scope: APIKey.Scope
        var expiresAt: Date?
    }

    /// What every key's secret starts with (secret scanners look for it).
    static let secretPrefix = "csk_"
    /// Characters of the secret shown in lists (`prefix`).
    static let shownPrefixLength = 12
    /// Keys one user may hold.
    static let maxPerUser = 100
    /// How long a recognised key is trusted without reading it again.
    static let maxAge: TimeInterval = 10
    /// `last_used_at` is accurate to this.
    static let lastUseResolution: TimeInterval = 60

    private struct State {
        var recognised = ExpiringCache<String, Identity>(capacity: 50_000, sweepInterval: APIKeys.maxAge)
        /// The hashes kept for each user, to forget them together.
        var hashesByUser: [UUID: Set<String>] = [:]
        /// Moves on every change, so that a read started before it is not kept.
        var generation: UInt64 = 0
        /// When each key's use was last written.
        var useWritten: [UUID: Date] = [:]
    }

    private let state = NIOLockedValueBox(State())
    private let hashKey: SymmetricKey
    private let clock: any WallClock
    private let kind: DatabaseKind
    /// The `last_used_at` writes, owned so that shutdown ends them.
    let writes = OwnedTasks()

    init(secretKey: String, clock: any WallClock, kind: DatabaseKind) {
        hashKey = SymmetricKey(data: SHA256.hash(data: Data(("chatserver api keys\u{0}" + secretKey).utf8)))
        self.clock = clock
        self.kind = kind
    }

    /// Whether `token` is a key's secret rather than an access token.
    static func isKey(_ token: String) -> Bool { token.hasPrefix(secretPrefix) }

    /// The stored form of `secret`.
    func hash(_ secret: String) -> String {
        HMAC<SHA256>.authenticationCode(for: Data(secret.utf8), using: hashKey).map { String(format: "%02x", $0) }.joined()
    }

    /// A new secret: the prefix and 256 random bits, base64url without padding.
    static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let encoded = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return secretPrefix + encoded
    }

    // MARK: The owner's operations

    /// Makes a key for `userID`; answers it with its secret, which is never stored.
    func create(for userID: UUID, name: String, scope: APIKey.Scope, expiresInDays: Int?, on db: any Database) async throws -> (APIKey, String) {
        let now = clock.now().atDatabasePrecision
        let secret = Self.newSecret()
        let key = APIKey(ownerID: userID, name: name, scope: scope, prefix: String(secret.prefix(Self.shownPrefixLength)),
                         secretHash: hash(secret), createdAt: now,
                         expiresAt: expiresInDays.map { now.addingTimeInterval(TimeInterval($0) * 86_400) })
        try await db.transaction { tx in
            // Counted under the owner's keys lock: concurrent creations stay within the limit.
            try await tx.lockForWriting("keys:" + userID.lowercased, on: self.kind)
            guard try await APIKey.query(on: tx).filter(\.$owner.$id == userID).count() < Self.maxPerUser else {
                throw APIKeyError.tooMany
            }
            try await key.create(on: tx)
        }
        return (key, secret)
    }

    /// `userID`'s keys, newest first.
    func list(of userID: UUID, on db: any Database) async throws -> [APIKey] {
        try await APIKey.query(on: db).filter(\.$owner.$id == userID).sort(\.$createdAt, .descending).sort(\.$id).all()
    }

    /// Deletes key `id` of `userID` (nil: whoever's, for staff); answers its owner, or nil when
    /// there is no such key. The caller then announces the owner's change (``SignedInUsers/changed(_:)``),
    /// which forgets the owner's keys on every instance.
    func revoke(_ id: UUID, of userID: UUID?, on db: any Database) async throws -> UUID? {
        var query = APIKey.query(on: db).filter(\.$id == id)
        if let userID { query = query.filter(\.$owner.$id == userID) }
        guard let key = try await query.first() else { return nil }
        try await key.delete(on: db)
        forget(user: key.$owner.id)
        return key.$owner.id
    }

    // MARK: Requests

    /// Who `secret` acts as; nil when it is no key (unknown, revoked or expired).
    func identity(of secret: String, on db: @autoclosure () -> any Database) async throws -> Identity? {
        guard Self.isKey(secret), secret.utf8.count <= 128 else { return nil }
        let now = clock.now()
        let hashed = hash(secret)
        let (kept, generation) = state.withLockedValue { ($0.recognised.value(for: hashed, now: now), $0.generation) }
        let identity: Identity
        if let kept {
            identity = kept
        } else {
            guard let key = try await APIKey.query(on: db()).filter(\.$secretHash == hashed).first(), let id = key.id else { return nil }
            identity = Identity(keyID: id, userID: key.$owner.id, scope: key.scope, expiresAt: key.expiresAt)
            state.withLockedValue { state in
                guard state.generation == generation else { return }
                state.recognised.set(identity, for: hashed, expiresAt: now.addingTimeInterval(Self.maxAge), now: now)
                state.hashesByUser[identity.userID, default: []].insert(hashed)
            }
        }
        if let expiresAt = identity.expiresAt, expiresAt <= now { return nil }
        return identity
    }

    /// Records that `identity`'s key was used now: written when its last write is a minute old.
    func used(_ identity: Identity, on db: any Database) {
        let now = clock.now()
        let due = state.withLockedValue { state in
            if let written = state.useWritten[identity.keyID], now.timeIntervalSince(written) < Self.lastUseResolution { return false }
            if state.useWritten.count > 100_000 { state.useWritten.removeAll() }
            state.useWritten[identity.keyID] = now
            return true
        }
        guard due else { return }
        writes.run {
            try? await db.sql().update(APIKey.schema).set("last_used_at", to: SQLBind(now.atDatabasePrecision))
                .where("id", .equal, SQLBind(identity.keyID)).run()
        }
    }

    /// Forgets the keys of `user` (of everyone when nil) in this process: a revocation, a change to
    /// the account, or news of one from another instance.
    func forget(user: UUID?) {
        state.withLockedValue { state in
            state.generation &+= 1
            guard let user else {
                state.recognised.removeAll()
                state.hashesByUser.removeAll()
                return
            }
            for hashed in state.hashesByUser.removeValue(forKey: user) ?? [] { state.recognised.remove(hashed) }
        }
    }
}

/// Why a key operation was refused.
enum APIKeyError: HTTPProblemConvertible, Equatable {
    case tooMany
    /// A key was sent where keys are not accepted (`/api/keys/`, `/auth/`), or outside its scope.
    case notAccepted(String)

    var problem: HTTPProblem {
        switch self {
        case .tooMany:
            var problem = HTTPProblem(.conflict, title: "Too many keys",
                                      detail: "An account may hold \(APIKeys.maxPerUser) API keys; revoke one first.")
            problem.code = "too_many_keys"
            return problem
        case .notAccepted(let detail):
            var problem = HTTPProblem(.forbidden, title: "API key not accepted", detail: detail)
            problem.code = "key_not_accepted"
            return problem
        }
    }
}
