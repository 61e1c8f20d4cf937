import Foundation
import Vapor

/// `GET /s/<id>`: the snapshot as a read-only page, as safe as the web chat. No HTML from a
/// message is ever interpreted (every text is escaped and shown as text), the page carries a strict
/// Content-Security-Policy (no inline script or style, nothing from elsewhere) and asks not to be
/// indexed. In `public` mode the server renders it (readable without JavaScript); in `users` mode
/// the page asks the visitor to sign in, then its script reads the snapshot with their token.
struct SharePageController: RouteCollection {
    let shares: ShareService

    func boot(routes: any RoutesBuilder) throws {
        routes.get("s", ":shareID", use: page)
    }

    static let contentSecurityPolicy = "default-src 'none'; img-src 'self' blob:; style-src 'self'; script-src 'self'; "
        + "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    func page(req: Request) async throws -> Response {
        let id = req.parameters.get("shareID") ?? ""
        var body = Self.document(title: "Not found", main: "<p>This share link does not exist, or it was revoked or has expired.</p>")
        var status = HTTPStatus.notFound
        do {
            let share = try await shares.open(id, on: req.db)
            status = .ok
            switch shares.mode {
            case .public: body = Self.render(try shares.conversation(of: share), shareID: id)
            case .users, .off: body = Self.shell(shareID: id)
            }
        } catch ShareError.notFound {
            // The page above; any other failure (the database away) is the server's answer to it.
        }
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .contentType, value: "text/html; charset=utf-8")
        headers.replaceOrAdd(name: "Content-Security-Policy", value: Self.contentSecurityPolicy)
        headers.replaceOrAdd(name: "X-Robots-Tag", value: "noindex, nofollow")
        headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        headers.replaceOrAdd(name: "Referrer-Policy", value: "no-referrer")
        return Response(status: status, headers: headers, body: .init(string: body))
    }

    /// The snapshot, rendered: each message's text escaped and kept as written (line breaks by CSS),
    /// its images from the share's own file route, its reasoning and tool calls folded away.
    static func render(_ conversation: SharedConversation, shareID: String) -> String {
        var main = "<h1>\(escape(conversation.title))</h1>\n<ol class=\"shared-messages\">\n"
        for message in conversation.messages {
            main += "<li class=\"shared-message \(message.role == .user ? "user" : "assistant")\">"
            main += "<p class=\"who\">\(message.role == .user ? "User" : "Assistant" + (message.model.isEmpty ? "" : " · " + escape(message.model)))</p>"
            for file in message.attachments {
                if file.mediaType.hasPrefix("image/") {
                    main += "<img src=\"/api/shares/\(escape(shareID))/files/\(escape(file.id))/\" alt=\"\(escape(file.name))\">"
                } else {
                    main += "<p class=\"file\">\(escape(file.name))</p>"
                }
            }
            if let reasoning = message.reasoning, !reasoning.isEmpty {
                main += "<details class=\"reasoning\"><summary>Reasoning</summary><div class=\"text\">\(escape(reasoning))</div></details>"
            }
            for call in message.toolCalls {
                main += "<details class=\"tool\"><summary>Tool: \(escape(call.name))</summary><div class=\"text\">\(escape(call.result ?? ""))</div></details>"
            }
            main += "<div class=\"text\">\(escape(message.content))</div></li>\n"
        }
        main += "</ol>"
        return document(title: conversation.title, main: main)
    }

    /// `users` mode: the page's script asks for a sign-in, then shows the snapshot.
    static func shell(shareID: String) -> String {
        document(title: "Shared chat", main: "<div id=\"shared\" data-share-id=\"\(escape(shareID))\"><p>Loading…</p></div>",
                 script: "/app/share.js")
    }

    static func document(title: String, main: String, script: String? = nil) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="robots" content="noindex, nofollow">
        <title>\(escape(title)) · ChatServer</title>
        <link rel="stylesheet" href="/app/share.css">
        \(script.map { "<script type=\"module\" src=\"\($0)\"></script>" } ?? "")
        </head>
        <body>
        <main class="shared">
        \(main)
        </main>
        </body>
        </html>
        """
    }

    /// Text as HTML text: `&`, `<`, `>`, `"` and `'` escaped, scalar by scalar (a quote followed by a
    /// combining mark is one `Character` to Swift, but still a quote to a browser).
    static func escape(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&#39;".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
    }
}
