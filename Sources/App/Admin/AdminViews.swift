import Fluent
import SQLKit
import Vapor

/// Every admin page's context: who is signed in, the CSRF token its forms carry, the section of
/// the navigation it belongs to, an optional notice, and the page's own content.
struct AdminPage<Content: Encodable>: Encodable {
    let title: String
    let section: String
    let me: Me
    let csrf: String
    let notice: String?
    let content: Content

    struct Me: Encodable {
        let id: String
        let email: String
        let isSuperuser: Bool
    }
}

extension Request {
    /// Renders `admin/<template>` inside the admin layout.
    func adminPage<Content: Encodable>(
        _ template: String, title: String, section: String, _ content: Content,
        notice: String? = nil, status: HTTPResponseStatus = .ok
    ) async throws -> Response {
        let (session, user) = try requireAdmin()
        let page = AdminPage(
            title: title, section: section,
            me: .init(id: user.id?.uuidString ?? "", email: user.email, isSuperuser: user.isSuperuser),
            csrf: session.csrfToken, notice: notice ?? query[String.self, at: "notice"].flatMap(AdminNotice.text), content: content
        )
        return try await view.render("admin/\(template)", page).encodeResponse(status: status, for: self)
    }

    /// A trimmed, non-empty query parameter.
    func adminQuery(_ name: String) -> String? {
        guard let value = query[String.self, at: name]?.replacingOccurrences(of: "\u{0}", with: "")
            .trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        return value
    }

    /// A trimmed form field ("" when absent).
    func formField(_ name: String) -> String {
        formText(name).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A form field as typed ("" when absent), without NUL characters (no text the service keeps holds any).
    func formText(_ name: String) -> String {
        ((try? content.get(String.self, at: name)) ?? "").replacingOccurrences(of: "\u{0}", with: "")
    }

    /// A checkbox: present when ticked.
    func formCheckbox(_ name: String) -> Bool {
        (try? content.get(String.self, at: name)) != nil
    }
}

/// The notices a redirect may ask the next page to show (`?notice=saved`); fixed texts, so that a
/// link cannot put words on an admin page.
enum AdminNotice {
    static func text(_ key: String) -> String? {
        switch key {
        case "saved": "Saved."
        case "password": "Password changed; the user is signed out everywhere."
        case "deleted": "Deleted."
        case "signed-out": "Signed out."
        case "checked": "Every provider was asked again."
        case "key-revoked": "API key revoked; it is refused from now on."
        case "share-revoked": "Share link revoked; it answers 404 from now on."
        default: nil
        }
    }
}

/// One choice of a select box.
struct AdminOption: Encodable {
    let value: String
    let label: String
    let selected: Bool

    static func list(_ choices: [(String, String)], selected: String?) -> [AdminOption] {
        choices.map { AdminOption(value: $0.0, label: $0.1, selected: $0.0 == (selected ?? "")) }
    }
}

/// Where a list page is: its page number and links to its neighbours (keeping the filters).
struct AdminPagination: Encodable {
    let page: Int
    let pages: Int
    let total: Int
    let previous: String?
    let next: String?

    static let pageSize = 25

    init(request: Request, total: Int) {
        self.total = total
        pages = max(1, (total + Self.pageSize - 1) / Self.pageSize)
        page = min(max(1, request.query[Int.self, at: "page"] ?? 1), pages)
        previous = page > 1 ? Self.link(request, page: page - 1) : nil
        next = page < pages ? Self.link(request, page: page + 1) : nil
    }

    var offset: Int { (page - 1) * Self.pageSize }

    private static func link(_ request: Request, page: Int) -> String {
        var components = URLComponents()
        components.path = request.path
        var items = (URLComponents(string: "?" + (request.url.query ?? ""))?.queryItems ?? []).filter { $0.name != "page" && $0.name != "notice" }
        items.append(URLQueryItem(name: "page", value: String(page)))
        components.queryItems = items
        return components.string ?? request.path
    }
}

/// Search helpers shared by the list pages.
enum AdminSearch {
    /// ``SQLSearch/contains(_:_:)`` as a Fluent filter.
    static func contains(_ column: String, _ text: String) -> DatabaseQuery.Filter {
        .sql(SQLSearch.contains(column, text))
    }

    /// "yes" → true, "no" → false, anything else → no filter.
    static func flag(_ value: String?) -> Bool? {
        switch value {
        case "yes": true
        case "no": false
        default: nil
        }
    }

    static let yesNo: [(String, String)] = [("", "Any"), ("yes", "Yes"), ("no", "No")]
}

extension Date {
    /// How the admin shows a time: ISO 8601 in UTC, to the second.
    var adminText: String {
        formatted(.iso8601).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " UTC")
    }
}
