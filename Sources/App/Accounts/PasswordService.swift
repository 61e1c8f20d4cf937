import NIOPosix
import Vapor

/// The password rules of the contract, and bcrypt hashing off the event loops.
public struct PasswordService: Sendable {
    let cost: Int
    let threadPool: NIOThreadPool
    /// A hash of no one's password, verified against when the email is unknown so that
    /// a wrong email takes as long as a wrong password.
    let decoyHash: String

    init(cost: Int, threadPool: NIOThreadPool) throws {
        self.cost = cost
        self.threadPool = threadPool
        // bcrypt's work is set by the cost written in the hash it checks against, so a random secret
        // hashed at the lowest cost and relabelled with `cost` takes a real check's time to verify,
        // without a full-cost hash (a quarter of a second at cost 12) at every start.
        let cheap = try Bcrypt.hash(UUID().uuidString, cost: 4)
        let label = "$2b$" + (cost < 10 ? "0" : "") + String(cost) + "$"
        guard cheap.hasPrefix("$2b$04$") else { throw Abort(.internalServerError, reason: "unexpected bcrypt hash format") }
        decoyHash = label + cheap.dropFirst(label.count)
    }

    public func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await threadPool.runIfActive { try Bcrypt.hash(password, cost: cost) }
    }

    /// True when `password` matches `hash`; with no hash, spends the same time and answers false.
    public func verify(_ password: String, against hash: String?) async throws -> Bool {
        let digest = hash ?? decoyHash
        let matches = try await threadPool.runIfActive { try Bcrypt.verify(password, created: digest) }
        return matches && hash != nil
    }

    /// The longest password, in UTF-8 bytes. bcrypt reads only the first 72 bytes, so a longer one
    /// would be silently cut, and two passwords differing only after byte 72 would be the same
    /// password: longer ones are refused instead, at sign-up, password change and sign-in alike.
    public static let maxBytes = 72

    /// Messages for each rule the password breaks; empty when it is acceptable.
    public static func problems(with password: String, email: String) -> [String] {
        var problems: [String] = []
        if password.count < 8 {
            problems.append("This password is too short; it must contain at least 8 characters.")
        }
        if password.utf8.count > maxBytes {
            problems.append("This password is too long; it may contain at most \(maxBytes) bytes.")
        }
        if password.utf8.contains(0) {
            // bcrypt reads a password as a C string: everything after a NUL would be ignored.
            problems.append("This password may not contain NUL characters.")
        }
        if !password.isEmpty, password.allSatisfy(\.isNumber) {
            problems.append("This password is entirely numeric.")
        }
        let lowered = password.lowercased()
        let normalizedEmail = User.normalize(email: email)
        let localPart = normalizedEmail.split(separator: "@").first.map(String.init) ?? normalizedEmail
        if !normalizedEmail.isEmpty, lowered == normalizedEmail || lowered == localPart {
            problems.append("This password is too similar to the email address.")
        }
        return problems
    }
}

/// The shape of an email address we accept.
public enum EmailAddress {
    private static let localCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~.-")
    private static let domainCharacters = Set("abcdefghijklmnopqrstuvwxyz0123456789-")

    /// Checks a normalized (lowercased, trimmed) address.
    public static func isValid(_ email: String) -> Bool {
        guard email.utf8.count <= 254 else { return false }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        let local = parts[0], domain = parts[1]
        guard !local.isEmpty, local.count <= 64, local.allSatisfy(localCharacters.contains),
              !local.hasPrefix("."), !local.hasSuffix("."), !local.contains("..")
        else { return false }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, let tld = labels.last, tld.count >= 2, tld.allSatisfy(\.isLetter) else { return false }
        return labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.allSatisfy(domainCharacters.contains)
                && !label.hasPrefix("-") && !label.hasSuffix("-")
        }
    }
}
