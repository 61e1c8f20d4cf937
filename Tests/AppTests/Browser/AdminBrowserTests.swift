@testable import App
import Fluent
import Foundation
import Testing

@Suite("Admin in a browser")
struct AdminBrowserTests {
    @Test("a staff member signs in, finds a user and deletes their chat in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")))
    func adminFlow() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        try await TestDatabase.sqlite.onFile { file in try await withTestApp(.sqlite, settings: file) { t in
            let staff = try await User.fixture(email: "staff@example.com", isStaff: true, on: t.db)
            let member = try await t.register(email: "member@example.com")
            let chat = try await t.createChat(token: member.access, title: "Holiday plans", content: "Where to go?")
            _ = try await t.waitForReply(try #require(chat.messages.last?.id), chat: chat.id, token: member.access)

            try await t.withLiveServer { base in
                try await Browser.scenario("admin_flow.py", [
                    "--base", base.replacingOccurrences(of: "127.0.0.1", with: "localhost"),
                    "--email", staff.email, "--password", testPassword, "--user", "member@example.com", "--chat", "Holiday plans",
                ])
            }
            #expect(try await Chat.find(UUID(uuidString: chat.id), on: t.db) == nil, "the browser deleted the chat")
            #expect(try await User.find(UUID(uuidString: member.user.id), on: t.db) != nil)
        } }
    }
}
