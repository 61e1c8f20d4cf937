@testable import App
import AnthropicEmulator
import Foundation
import Testing

@Suite("Web client in a browser")
struct WebClientBrowserTests {
    /// The reply a scenario stops: about 25 s long, so that it is still streaming when the click or
    /// the request to stop it comes, however slow the machine makes the browser (a 2.5 s reply had
    /// ended first, and the Stop button was hidden, on a loaded CI machine). The scenarios check
    /// that its last piece was never stored.
    static let longReply = ["Long"] + (0..<400).map { " part\($0)" }

    @Test("sign up, stream a reply, stop one, reload mid-reply, rename, delete, hostile text — in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")))
    func webClient() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        try await TestDatabase.sqlite.onFile { file in try await withTestApp(.sqlite, settings: file, emulated: true) { t in
            let emulator = try #require(t.emulator)
            // Every reply: Markdown, then 30 words, a piece every 60 ms (about 2.5 s in all).
            let pieces = ["Here", " is", " **bold**", " and", " `code`", ":\n\n", "- one\n", "- two\n\n"] + (0..<30).map { " word\($0)" }
            emulator.setDefault(.reply(pieces, delay: .milliseconds(60)))
            // The second reply is the one stopped.
            emulator.enqueue(.reply(pieces, delay: .milliseconds(60)), .reply(Self.longReply, delay: .milliseconds(60)))
            try await t.withLiveServer { base in
                try await Browser.scenario("web_client.py", ["--base", base.replacingOccurrences(of: "127.0.0.1", with: "localhost")])
            }
        } }
    }

    @Test("regenerate, switch versions, edit, search and export in the web chat, each audited with axe — in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")))
    func conversationTools() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        try await TestDatabase.sqlite.onFile { file in try await withTestApp(.sqlite, settings: file, emulated: true) { t in
            let emulator = try #require(t.emulator)
            func words(_ text: String) -> [String] { text.split(separator: " ").enumerated().map { $0 == 0 ? String($1) : " " + $1 } }
            emulator.enqueue(.reply(words("Lisbon first: trams, tiles and the river."), delay: .milliseconds(40)),
                             .reply(words("Lisbon second: viewpoints and pastries."), delay: .milliseconds(40)),
                             .reply(words("Porto: the river, the bridges and the cellars."), delay: .milliseconds(40)))
            try await t.withLiveServer { base in
                try await Browser.scenario("web_tools.py", ["--base", base.replacingOccurrences(of: "127.0.0.1", with: "localhost")])
            }
        } }
    }

    @Test("two instances on one PostgreSQL, no affinity: a reply started on one grows live in a browser on the other, and stops from there",
          .enabled(if: (Browser.available || Browser.required) && TestDatabase.postgresURL != nil,
                   Comment(rawValue: Browser.unavailableReason ?? "")))
    func twoInstances() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        try await withTwoInstances { a, b, _ in
            let emulator = try #require(a.emulator)
            let pieces = ["Here", " is", " **bold**", " and", " `code`", ":\n\n", "- one\n", "- two\n\n"] + (0..<30).map { " word\($0)" }
            emulator.setDefault(.reply(pieces, delay: .milliseconds(60)))
            // The second reply is the one stopped.
            emulator.enqueue(.reply(pieces, delay: .milliseconds(60)), .reply(Self.longReply, delay: .milliseconds(60)))
            try await a.withLiveServer { baseA in
                try await b.withLiveServer { baseB in
                    try await Browser.scenario("web_two_instances.py", [
                        "--base", baseB.replacingOccurrences(of: "127.0.0.1", with: "localhost"), "--other", baseA,
                    ])
                }
            }
        }
    }

    @Test("sign-in through Google and two other OpenID providers with password sign-in off: a button each, the one-time code, a refused domain explained, a planted code ignored — in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")))
    func providerSignIn() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        let google = try await FakeOpenIDProvider.start()
        let corp = try await FakeOpenIDProvider.start(issuerIsBase: true, clientID: "corp-client")
        let partner = try await FakeOpenIDProvider.start(issuerIsBase: true, clientID: "partner-client")
        corp.setIdentity { $0.subject = "corp-7"; $0.email = "grace@corp.example" }
        let port = try freeLoopbackPort()
        let base = "http://localhost:\(port)"
        var settings = google.settings(serverBase: base).merging(corp.oidcSettings("corp", serverBase: base)) { $1 }
            .merging(partner.oidcSettings("partner", serverBase: base)) { $1 }
        settings.merge(["OIDC_PROVIDERS": "corp,partner", "OIDC_CORP_DISPLAY_NAME": "Corp SSO", "OIDC_PARTNER_ALLOWED_DOMAINS": "partner.example",
                        "PASSWORD_LOGIN": "false", "SIGNUP": "closed"]) { $1 }
        do {
            try await TestDatabase.sqlite.onFile { file in try await withTestApp(.sqlite, settings: settings.merging(file) { $1 }) { t in
                try await t.withLiveServer(port: port) { _ in
                    try await Browser.scenario("web_signin.py", ["--base", base])
                }
            } }
        } catch {
            for provider in [google, corp, partner] { await provider.shutdown() }
            throw error
        }
        for provider in [google, corp, partner] { await provider.shutdown() }
    }

    @Test("the model picker groups several providers and shows one not answering; an OpenAI-compatible reply's reasoning streams collapsed above its answer — in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")))
    func modelsAndReasoning() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        func words(_ text: String) -> [String] { text.split(separator: " ").enumerated().map { $0 == 0 ? String($1) : " " + $1 } }
        let emulator = try await AnthropicEmulator.start()
        // The reasoning arrives in a leading <think> block, 40 pieces 60 ms apart: about 2.5 s to see it live.
        var reply = Script.Reply(words("Rayleigh scattering: the air scatters blue light most."), delay: .milliseconds(60),
                                 reasoning: words("Short wavelengths scatter more. " + String(repeating: "Blue is short. ", count: 12)))
        reply.reasoningStyle = .think
        emulator.setDefault(.reply(reply))
        let dead = try RefusingPort()
        defer { withExtendedLifetime(dead) {} }
        var settings = UpstreamAPI.anthropic.settings(for: emulator).merging(UpstreamAPI.openai.settings(for: emulator)) { $1 }
        settings.merge(["DEFAULT_MODEL": "claude-sonnet-5-5", "PROVIDERS": "dead", "PROVIDER_DEAD_API": "openai", "MODEL_CONNECT_TIMEOUT": "1s",
                        "PROVIDER_DEAD_BASE_URL": dead.url("/v1"), "PROVIDER_DEAD_MODELS": "m1"]) { $1 }
        do {
            try await TestDatabase.sqlite.onFile { file in try await withTestApp(.sqlite, settings: settings.merging(file) { $1 }) { t in
                let catalog = try t.services.chat.catalog
                try await waitUntil("the dead provider to be marked") { catalog.listing.contains { $0.id == "dead/m1" && !$0.available } }
                try await t.withLiveServer { base in
                    try await Browser.scenario("web_models.py", ["--base", base.replacingOccurrences(of: "127.0.0.1", with: "localhost"),
                                                                 "--model", "openai/gpt-emu", "--dead", "dead/m1"])
                }
                let request = try #require(emulator.requests.last)
                #expect(request.api == "openai" && request.model == "gpt-emu", "the chosen model answered")
            } }
        } catch {
            await emulator.shutdown()
            throw error
        }
        await emulator.shutdown()
    }

    @Test("attachments: a PNG dropped, previewed and uploaded, sent and shown as a thumbnail that opens full size; a refused file explained and not sent; a removed file deleted; a text file as a download — in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")))
    func attachments() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        func words(_ text: String) -> [String] { text.split(separator: " ").enumerated().map { $0 == 0 ? String($1) : " " + $1 } }
        let emulator = try await AnthropicEmulator.start()
        emulator.setDefault(.reply(words("A small gradient, purple to green."), delay: .milliseconds(30)))
        var settings = UpstreamAPI.anthropic.settings(for: emulator)
        settings.merge(["DEFAULT_MODEL": "claude-sonnet-5-5"]) { $1 }
        do {
            try await TestDatabase.sqlite.onFile { file in try await withTestApp(.sqlite, settings: settings.merging(file) { $1 }) { t in
                try await t.withLiveServer { base in
                    try await Browser.scenario("web_attachments.py", ["--base", base.replacingOccurrences(of: "127.0.0.1", with: "localhost"),
                                                                      "--model", "claude-sonnet-5-5"])
                }
                let request = try #require(emulator.requests.last)
                #expect(request.model == "claude-sonnet-5-5", "the chosen model answered")
                #expect(request.messages.first?.content.contains("What is in this picture?") == true, "the question went with its picture")
                #expect(request.attachments.first?.first?.kind == "image", "the picture reached the model as an image block")
                #expect(request.attachments.first?.first?.mediaType == "image/png")
                #expect(request.messages.last?.content.contains("kumquat-7391") == true, "the text file reached the model as text")
            } }
        } catch {
            await emulator.shutdown()
            throw error
        }
        await emulator.shutdown()
    }

    @Test("tools: chosen in the chat's settings (a server down marked so), a call shown live while it runs, then its arguments and result opened on demand, HTML in a result shown as text, the choice kept — in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")))
    func tools() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        let alpha = try await MCPToolServer.start(name: "alpha")
        let down = try RefusingPort()
        defer { withExtendedLifetime(down) {}; alpha.stop() }
        let emulator = try await AnthropicEmulator.start()
        emulator.enqueue(.calling([.init(id: "toolu_1", name: modelName("alpha", "gate"), arguments: #"{"name": "browser"}"#)]),
                         .calling([.init(id: "toolu_2", name: modelName("alpha", "big"), arguments: #"{"size": 40}"#)]),
                         .reply(["The gate", " is open."]))
        var settings = UpstreamAPI.anthropic.settings(for: emulator)
        settings.merge(["DEFAULT_MODEL": "claude-sonnet-5-5", "MCP_SERVERS": "alpha=\(alpha.url),down=\(down.url("/mcp"))"]) { $1 }
        do {
            try await TestDatabase.sqlite.onFile { file in try await withTestApp(.sqlite, settings: settings.merging(file) { $1 }) { t in
                let tools = try t.services.chat.tools
                try await waitUntil("the tools listed, the server down marked", timeout: .seconds(30)) {
                    tools.standings.allSatisfy { $0.standing.checkedAt != nil }
                }
                try await t.withLiveServer { base in
                    try await Browser.scenario("web_mcp_tools.py", ["--base", base.replacingOccurrences(of: "127.0.0.1", with: "localhost"),
                                                                "--gate-file", alpha.gatePath("browser")])
                }
                #expect(alpha.calls == ["gate", "big"])
                #expect(emulator.requests.first?.tools.count == 2, "the two tools checked were offered")
            } }
        } catch {
            await emulator.shutdown()
            throw error
        }
        await emulator.shutdown()
    }

    @Test("API keys: made in a dialog with a name, scope and expiry, the secret shown once with a sample and working, listed by prefix only, revoked and refused — in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")))
    func apiKeys() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        try await TestDatabase.sqlite.onFile { file in try await withTestApp(.sqlite, settings: file) { t in
            try await t.withLiveServer { base in
                try await Browser.scenario("web_keys.py", ["--base", base.replacingOccurrences(of: "127.0.0.1", with: "localhost")])
            }
            #expect(try await APIKey.query(on: t.db).count() == 0, "the key was revoked")
        } }
    }

    @Test("the account page: a name, a password changed in one tab signing the other out, the data downloaded, the chat list a drawer on a phone, the account deleted — in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")))
    func accountPage() async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        try await TestDatabase.sqlite.onFile { file in
            try await withTestApp(.sqlite, settings: file.merging(["OFFLINE_WORD_DELAY": "0"]) { $1 }) { t in
                try await t.withLiveServer { base in
                    try await Browser.scenario("web_account.py", ["--base", base.replacingOccurrences(of: "127.0.0.1", with: "localhost")])
                }
                #expect(try await t.userCount() == 0, "the account was deleted")
            }
        }
    }

    @Test("share links: a chat shared from its dialog opens in a fresh browser (public: at once; users: after signing in and coming back), every text as text; revoked, it is gone — in headless Chromium",
          .enabled(if: Browser.available || Browser.required, Comment(rawValue: Browser.unavailableReason ?? "")),
          arguments: ["public", "users"])
    func shareLinks(_ mode: String) async throws {
        if let reason = Browser.unavailableReason { Issue.record(Comment(rawValue: reason)); return }
        try await TestDatabase.sqlite.onFile { file in
            try await withTestApp(.sqlite, settings: file.merging(["SHARE_LINKS": mode, "OFFLINE_WORD_DELAY": "0"]) { $1 }) { t in
                try await t.withLiveServer { base in
                    try await Browser.scenario("web_share.py", ["--base", base.replacingOccurrences(of: "127.0.0.1", with: "localhost"), "--mode", mode])
                }
                #expect(try await ShareLink.query(on: t.db).count() == 0, "the link was revoked")
            }
        }
    }
}
