@testable import App
import Fluent
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
import VaporTesting

/// What a review of the self-service endpoints found an attacker could do, each shut.
@Suite("Your account: what a stolen session cannot do")
struct SelfServiceHardeningTests {
    @Test("a password guessed at /auth/password/ or DELETE /auth/me/ spends the account's sign-in budget (429 once it is gone)")
    func guessesShareTheSignInBudget() async throws {
        try await withTestApp(.sqlite, settings: ["RATE_LIMIT_LOGIN_FAILURES": "3/hour", "RATE_LIMIT_LOGIN_ACCOUNT": "3/hour"]) { t in
            let session = try await t.register()
            var statuses: [HTTPStatus] = []
            for round in 0..<3 {
                let path = round.isMultiple(of: 2) ? "/auth/password/" : "/auth/me/"
                let body: [String: Any] = round.isMultiple(of: 2)
                    ? ["current_password": "guess \(round) wrong", "new_password": "a new long secret"] : ["password": "guess \(round) wrong"]
                statuses.append(try await t.send(round.isMultiple(of: 2) ? .POST : .DELETE, path, json: body, token: session.access).status)
            }
            #expect(statuses == [.badRequest, .badRequest, .badRequest])
            let spent = try await t.send(.POST, "/auth/password/", json: ["current_password": testPassword, "new_password": "a new long secret"],
                                         token: session.access)
            #expect(spent.status == .tooManyRequests, "even the right password waits: the budget is spent")
            #expect(try await t.login(email: session.user.email).status == .tooManyRequests, "the sign-in form shares it")
        }
    }

    @Test("an account without a password is deleted only by a session that signed in within 5 minutes, however fresh its tokens")
    func deletionNeedsARecentSignInOfThisSession() async throws {
        try await withTestApp(.sqlite) { t in
            let user = User(email: "sso@example.com", passwordHash: nil)
            try await user.create(on: t.db)
            let old = try await t.services.sessions.start(for: user, on: t.db)
            t.clock.advance(by: 6 * 60)
            #expect(try await t.send(.DELETE, "/auth/me/", token: old.access).status == .forbidden)
            // The owner signs in elsewhere now; the old session refreshes: fresh tokens, an old sign-in.
            let fresh = try await t.services.sessions.start(for: user, on: t.db)
            let refreshed = try await t.send(.POST, "/auth/refresh/", json: ["refresh": old.refresh]).decoded(TokenPairBody.self)
            let refused = try await t.send(.DELETE, "/auth/me/", token: refreshed.access)
            #expect(refused.status == .forbidden)
            #expect(try refused.jsonObject()["code"] as? String == "reauthentication_required")
            #expect(try await t.userCount() == 1)
            #expect(try await t.send(.DELETE, "/auth/me/", token: fresh.access).status == .noContent)
        }
    }

    @Test("a deletion checked before a password change (or a sign-out everywhere) does not go through after it")
    func deletionLosesToAPasswordChange() async throws {
        try await withTestApp(.sqlite) { t in
            let session = try await t.register()
            let checked = try #require(try await User.find(email: session.user.email, on: t.db))
            let changed = try await t.send(.POST, "/auth/password/", json: ["current_password": testPassword, "new_password": "a new long secret"],
                                           token: session.access)
            #expect(changed.status == .ok)
            await #expect(throws: AccountsError.self) {
                _ = try await t.services.chat.service.deleteUser(checked, accounts: t.services.accounts, asChecked: true, on: t.db)
            }
            #expect(try await t.userCount() == 1)
        }
    }

    @Test("a password change then a sign-out everywhere within one second: the changed session is signed out too")
    func twoRevocationsInOneSecond() async throws {
        try await withTestApp(.sqlite) { t in
            // The test clock stands still: every step happens within the same second.
            let session = try await t.register()
            let changed = try await t.send(.POST, "/auth/password/", json: ["current_password": testPassword, "new_password": "a new long secret"],
                                           token: session.access).decoded(SessionBody.self)
            #expect(try await t.send(.GET, "/auth/me/", token: changed.access).status == .ok)
            #expect(try await t.send(.POST, "/auth/sessions/revoke/", token: changed.access).status == .noContent)
            #expect(try await t.send(.GET, "/auth/me/", token: changed.access).status == .unauthorized)
            #expect(try await t.send(.POST, "/auth/refresh/", json: ["refresh": changed.refresh]).status == .unauthorized)
            let again = try await t.login(email: session.user.email, password: "a new long secret").decoded(SessionBody.self)
            #expect(try await t.send(.GET, "/auth/me/", token: again.access).status == .ok, "a sign-in after both lives")
        }
    }

    @Test("a password with a NUL is refused everywhere (bcrypt would read only what comes before it)")
    func passwordsWithNUL() async throws {
        try await withTestApp(.sqlite) { t in
            let register = try await t.send(.POST, "/auth/register/", json: ["email": uniqueEmail(), "password": "\u{0}long enough secret"])
            #expect(register.status == .badRequest)
            let session = try await t.register()
            let change = try await t.send(.POST, "/auth/password/", json: ["current_password": testPassword, "new_password": "\u{0}aaaaaaaaaa"],
                                          token: session.access)
            #expect(try change.problem().errors?["new_password"] != nil)
            #expect(try await t.login(email: session.user.email, password: testPassword + "\u{0}x").status == .badRequest)
            #expect(try await t.login(email: session.user.email).status == .ok)
        }
    }

    @Test("a superuser does not delete their own account here (the admin does, by another superuser)")
    func superuserKeepsTheirAccount() async throws {
        try await withTestApp(.sqlite) { t in
            let owner = try await t.services.accounts.createUser(email: "root@example.com", password: testPassword, isStaff: true,
                                                                  isSuperuser: true, on: t.db)
            let session = try await t.login(email: owner.email).decoded(SessionBody.self)
            let refused = try await t.send(.DELETE, "/auth/me/", json: ["password": testPassword], token: session.access)
            #expect(refused.status == .forbidden)
            #expect(try refused.jsonObject()["code"] as? String == "superuser")
            #expect(try await t.userCount() == 1)
        }
    }

    @Test("HEAD on the export answers its headers and holds nothing: the export works after it")
    func headHoldsNoExport() async throws {
        try await withTestApp(.sqlite) { t in
            let session = try await t.register()
            let head = try await t.send(.HEAD, "/auth/me/export/", token: session.access)
            #expect(head.status == .ok)
            #expect(head.headers.contentType?.description == "application/zip")
            #expect(try await t.send(.GET, "/auth/me/export/", token: session.access).status == .ok)
            #expect(try await t.send(.GET, "/auth/me/export/", token: session.access).status == .ok, "the lock went with the first")
        }
    }

    @Test("an export stops between entries once its session is signed out: the archive is cut short, no central directory")
    func exportStopsWhenSignedOut() async throws {
        try await withTestApp(.sqlite) { t in
            let session = try await t.register()
            for title in ["One", "Two"] { _ = try await t.createChat(token: session.access, title: title) }
            let user = try #require(try await User.find(email: session.user.email, on: t.db))
            let export = AccountExport(files: try t.services.files, usage: try t.services.usage, keys: try t.services.keys,
                                       shares: try t.services.shares, clock: t.clock)
            let files = try await export.files(of: user, on: t.db)
            let checks = ManagedAtomicCounter()
            let written = NIOLockedBuffer()
            await #expect(throws: AccountsError.self) {
                try await export.write(user, files: files, on: t.db, checking: {
                    if checks.increment() > 1 { throw AccountsError.invalidToken("Signed out during the export.") }
                }) { piece in written.append(piece) }
            }
            let bytes = written.bytes
            #expect(!bytes.isEmpty, "what came before the sign-out was sent")
            let endOfDirectory: [UInt8] = [0x50, 0x4B, 0x05, 0x06]
            #expect(!bytes.indices.dropLast(3).contains { Array(bytes[$0..<$0 + 4]) == endOfDirectory }, "no end of central directory")
        }
    }

    @Test("ZIP names every system can write: no separators, Windows' reserved characters and device names, invisible format characters")
    func safeNames() {
        #expect(AccountExport.safeName("../x") == "_x")
        #expect(AccountExport.safeName("...") == "file")
        #expect(AccountExport.safeName("a/b\\c:d\u{0}e") == "a_b_c_d_e")
        #expect(AccountExport.safeName("a<b>c\"d|e?f*g") == "a_b_c_d_e_f_g")
        #expect(AccountExport.safeName("invoice\u{202E}fdp.exe") == "invoice_fdp.exe")
        #expect(AccountExport.safeName("con.txt") == "_con.txt")
        #expect(AccountExport.safeName("LPT1") == "_LPT1")
        #expect(AccountExport.safeName("notes. . ") == "notes")
        #expect(AccountExport.safeName(String(repeating: "é", count: 300)).count == 100)
    }
}

/// A counter shared with a `@Sendable` closure.
private final class ManagedAtomicCounter: Sendable {
    private let value = NIOLockedValueBox(0)
    func increment() -> Int { value.withLockedValue { $0 += 1; return $0 } }
}

/// Bytes collected from a `@Sendable` writer.
private final class NIOLockedBuffer: Sendable {
    private let data = NIOLockedValueBox<[UInt8]>([])
    func append(_ buffer: ByteBuffer) { data.withLockedValue { $0 += Array(buffer.readableBytesView) } }
    var bytes: [UInt8] { data.withLockedValue { $0 } }
}

@Suite("ZIP streams")
struct ZipStreamTests {
    @Test("CRC-32 gives the standard check value, the same in one piece or split at every length")
    func crc() {
        var whole = CRC32()
        whole.update(Array("123456789".utf8))
        #expect(whole.value == 0xCBF4_3926)
        let bytes = (0..<1_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        var reference = CRC32()
        for byte in bytes { reference.update(CollectionOfOne(byte)) }
        for split in [1, 7, 8, 9, 63, 500, 999] {
            var pieces = CRC32()
            pieces.update(Array(bytes[..<split]))
            pieces.update(bytes[split...])
            #expect(pieces.value == reference.value, "split at \(split)")
        }
    }
}
