import Fluent
import Vapor

/// Users in the admin: list, look at, edit, reset a password, delete. Staff who are not superusers
/// may not touch superusers nor make anyone one; nobody may lock themselves out.
struct AdminUsersController: RouteCollection {
    let accounts: AccountService
    let chats: ChatService
    let usage: UsageLedger
    let keys: APIKeys
    let users: SignedInUsers

    func boot(routes: any RoutesBuilder) throws {
        let users = routes.grouped("users")
        users.get(use: list)
        users.get(":userID", use: detail)
        users.post(":userID", use: update)
        users.post(":userID", "password", use: resetPassword)
        users.get(":userID", "delete", use: confirmDelete)
        users.post(":userID", "delete", use: delete)
        users.post(":userID", "keys", ":keyID", "revoke", use: revokeKey)
    }

    struct Row: Encodable {
        let id: String
        let email: String
        let name: String
        let role: String
        let isStaff: Bool
        let isSuperuser: Bool
        let isActive: Bool
        let lastLogin: String?
        let created: String?
        let hasPassword: Bool
        /// The quota field as typed: empty for the server's, "unlimited", or a number.
        let quota: String

        init(_ user: User) {
            id = user.id?.uuidString ?? ""
            email = user.email
            name = user.name
            role = user.role.rawValue
            isStaff = user.isStaff
            isSuperuser = user.isSuperuser
            isActive = user.isActive
            lastLogin = user.lastLogin?.adminText
            created = user.createdAt?.adminText
            hasPassword = user.passwordHash != nil
            quota = user.dailyTokenQuota.map { $0 < 0 ? "unlimited" : String($0) } ?? ""
        }
    }

    struct List: Encodable {
        let q: String
        let roles: [AdminOption]
        let staff: [AdminOption]
        let active: [AdminOption]
        let sorts: [AdminOption]
        let rows: [Row]
        let pagination: AdminPagination
    }

    static let sorts: [(String, String)] = [
        ("-created", "Newest first"), ("created", "Oldest first"), ("email", "Email A–Z"), ("-email", "Email Z–A"),
    ]

    func list(req: Request) async throws -> Response {
        let q = req.adminQuery("q")
        let role = req.adminQuery("role").flatMap(UserRole.init(rawValue:))
        let staff = AdminSearch.flag(req.adminQuery("staff"))
        let active = AdminSearch.flag(req.adminQuery("active"))
        let sortKey = req.adminQuery("sort") ?? "-created"
        let filtered = { () -> QueryBuilder<User> in
            let query = User.query(on: req.db)
            if let q { query.group(.or) { $0.filter(AdminSearch.contains("email", q)).filter(AdminSearch.contains("name", q)) } }
            if let role { query.filter(\.$role == role) }
            if let staff { query.filter(\.$isStaff == staff) }
            if let active { query.filter(\.$isActive == active) }
            return query
        }
        let pagination = AdminPagination(request: req, total: try await filtered().count())
        let query = filtered()
        switch sortKey {
        case "created": query.sort(\.$createdAt, .ascending)
        case "email": query.sort(\.$email, .ascending)
        case "-email": query.sort(\.$email, .descending)
        default: query.sort(\.$createdAt, .descending)
        }
        let users = try await query.sort(\.$id).range(pagination.offset..<(pagination.offset + AdminPagination.pageSize)).all()
        let content = List(
            q: q ?? "",
            roles: AdminOption.list([("", "Any")] + UserRole.allCases.map { ($0.rawValue, $0.rawValue) }, selected: role?.rawValue),
            staff: AdminOption.list(AdminSearch.yesNo, selected: req.adminQuery("staff")),
            active: AdminOption.list(AdminSearch.yesNo, selected: req.adminQuery("active")),
            sorts: AdminOption.list(Self.sorts, selected: Self.sorts.contains { $0.0 == sortKey } ? sortKey : "-created"),
            rows: users.map(Row.init), pagination: pagination
        )
        return try await req.adminPage("users", title: "Users", section: "users", content)
    }

    struct Detail: Encodable {
        let user: Row
        let roles: [AdminOption]
        let mayEdit: Bool
        let mayGrantSuperuser: Bool
        let isSelf: Bool
        let chatCount: Int
        let messageCount: Int
        /// The OpenID identities it signs in with.
        let identities: [IdentityLink]
        let recentChats: [AdminChatsController.Row]
        let errors: [String]
        /// The server's quota, for the field's hint ("none" without one).
        let defaultQuota: String
        /// Tokens used today (UTC).
        let usedToday: Int
        /// Their API keys (never a secret: only its first characters).
        let keys: [Key]

        struct Key: Encodable {
            let id: String
            let name: String
            let scope: String
            let prefix: String
            let created: String
            let expires: String
            let lastUsed: String
        }

        struct IdentityLink: Encodable {
            let provider: String
            let subject: String
            let email: String
            let linked: String?
        }
    }

    func detail(req: Request) async throws -> Response {
        try await renderDetail(req, try await Self.find(req), errors: [], status: .ok)
    }

    func update(req: Request) async throws -> Response {
        let (_, me) = try req.requireAdmin()
        let user = try await Self.find(req)
        try Self.requireMayEdit(user, by: me)
        let quotaField = req.formField("daily_token_quota").lowercased()
        let quota: Int64?
        switch quotaField {
        case "": quota = nil
        case "unlimited", "-1": quota = -1
        default:
            guard let value = Int64(quotaField), value >= 0 else {
                return try await renderDetail(req, user, errors: ["Tokens a day: leave empty, write unlimited, or give a whole number."],
                                              status: .badRequest)
            }
            quota = value
        }
        let change = AccountService.AccountChange(
            name: req.formField("name"), role: UserRole(rawValue: req.formField("role")),
            isStaff: req.formCheckbox("is_staff"), isActive: req.formCheckbox("is_active"), isSuperuser: req.formCheckbox("is_superuser"),
            dailyTokenQuota: quota
        )
        let changes: [String]
        do {
            changes = try await accounts.update(user, with: change, by: me, on: req.db)
        } catch let refused as AccountService.AccountChangeRefused {
            return try await renderDetail(req, user, errors: refused.problems, status: .badRequest)
        }
        req.logger.notice("admin changed user", metadata: [
            "admin": "\(me.email)", "user": "\(user.email)", "changes": "\(changes.joined(separator: "; "))",
        ])
        return req.redirect(to: "/admin/users/\(try user.requireID())/?notice=saved")
    }

    func resetPassword(req: Request) async throws -> Response {
        let (session, me) = try req.requireAdmin()
        let user = try await Self.find(req)
        try Self.requireMayEdit(user, by: me)
        let password = req.formText("new_password")
        // Staff setting their own password stay signed in here; everyone else is signed out everywhere.
        let problems = try await accounts.resetPassword(of: user, to: password, keeping: user.id == me.id ? session : nil, on: req.db)
        guard problems.isEmpty else { return try await renderDetail(req, user, errors: problems, status: .badRequest) }
        req.logger.notice("admin reset a password", metadata: ["admin": "\(me.email)", "user": "\(user.email)"])
        return req.redirect(to: "/admin/users/\(try user.requireID())/?notice=password")
    }

    /// Revokes one of the user's API keys: refused at once, on every instance.
    func revokeKey(req: Request) async throws -> Response {
        let (_, me) = try req.requireAdmin()
        let user = try await Self.find(req)
        try Self.requireMayEdit(user, by: me)
        guard let keyID = req.parameters.get("keyID").flatMap(UUID.init(hyphenated:)),
              let owner = try await keys.revoke(keyID, of: try user.requireID(), on: req.db) else {
            throw HTTPProblem(.notFound, title: "Not found", detail: "No such API key.")
        }
        users.changed(owner)
        req.logger.notice("admin revoked an API key", metadata: ["admin": "\(me.email)", "user": "\(user.email)", "key": "\(keyID)"])
        return req.redirect(to: "/admin/users/\(try user.requireID())/?notice=key-revoked")
    }

    struct DeletePage: Encodable {
        let user: Row
        let chats: Int
        let messages: Int
        let refreshTokens: Int
        let identities: Int
    }

    func confirmDelete(req: Request) async throws -> Response {
        let (_, me) = try req.requireAdmin()
        let user = try await Self.find(req)
        try Self.requireMayDelete(user, by: me)
        let id = try user.requireID()
        let content = DeletePage(
            user: Row(user),
            chats: try await Self.chatCount(of: id, on: req.db),
            messages: try await Self.messageCount(of: id, on: req.db),
            refreshTokens: try await RefreshToken.query(on: req.db).filter(\.$user.$id == id).count(),
            identities: try await Identity.query(on: req.db).filter(\.$user.$id == id).count()
        )
        return try await req.adminPage("user_delete", title: "Delete \(user.email)", section: "users", content)
    }

    func delete(req: Request) async throws -> Response {
        let (_, me) = try req.requireAdmin()
        let user = try await Self.find(req)
        try Self.requireMayDelete(user, by: me)
        let chatCount = try await chats.deleteUser(user, accounts: accounts, on: req.db)
        req.logger.notice("admin deleted user", metadata: ["admin": "\(me.email)", "user": "\(user.email)", "chats": "\(chatCount)"])
        return req.redirect(to: "/admin/users/?notice=deleted")
    }

    private func renderDetail(_ req: Request, _ user: User, errors: [String], status: HTTPResponseStatus) async throws -> Response {
        let (_, me) = try req.requireAdmin()
        let id = try user.requireID()
        let recent = try await Chat.query(on: req.db).filter(\.$owner.$id == id).sort(\.$activityAt, .descending).limit(10).all()
        let content = Detail(
            user: Row(user),
            roles: AdminOption.list(UserRole.allCases.map { ($0.rawValue, $0.rawValue) }, selected: user.role.rawValue),
            mayEdit: Self.mayEdit(user, by: me), mayGrantSuperuser: me.isSuperuser, isSelf: user.id == me.id,
            chatCount: try await Self.chatCount(of: id, on: req.db),
            messageCount: try await Self.messageCount(of: id, on: req.db),
            identities: try await Identity.query(on: req.db).filter(\.$user.$id == id).sort(\.$provider).all().map {
                .init(provider: $0.provider, subject: $0.subject, email: $0.email, linked: $0.createdAt?.adminText)
            },
            recentChats: recent.map { AdminChatsController.Row($0, owner: user.email, messages: nil) },
            errors: errors,
            defaultQuota: usage.settings.quotaTokensPerDay.map { "\($0) tokens" } ?? "none",
            usedToday: try await usage.tokensToday(of: id, on: req.db),
            keys: try await keys.list(of: id, on: req.db).map { key in
                Detail.Key(id: key.id?.lowercased ?? "", name: key.name, scope: key.scope.rawValue, prefix: key.prefix,
                           created: key.createdAt.adminText, expires: key.expiresAt?.adminText ?? "never",
                           lastUsed: key.lastUsedAt?.adminText ?? "never")
            }
        )
        return try await req.adminPage("user", title: user.email, section: "users", content, status: status)
    }

    static func find(_ req: Request) async throws -> User {
        guard let id = req.parameters.get("userID", as: UUID.self), let user = try await User.find(id, on: req.db) else {
            throw AdminError.notFound
        }
        return user
    }

    static func chatCount(of userID: UUID, on db: any Database) async throws -> Int {
        try await Chat.query(on: db).filter(\.$owner.$id == userID).count()
    }

    /// Messages in all of the user's chats.
    static func messageCount(of userID: UUID, on db: any Database) async throws -> Int {
        try await Message.query(on: db).join(Chat.self, on: \Message.$chat.$id == \Chat.$id).filter(Chat.self, \.$owner.$id == userID).count()
    }

    static func mayEdit(_ user: User, by me: User) -> Bool {
        me.isSuperuser || !user.isSuperuser
    }

    static func requireMayEdit(_ user: User, by me: User) throws {
        guard mayEdit(user, by: me) else { throw AdminError.forbidden("Only a superuser can change a superuser.") }
    }

    static func requireMayDelete(_ user: User, by me: User) throws {
        try requireMayEdit(user, by: me)
        guard user.id != me.id else { throw AdminError.forbidden("You cannot delete your own account here.") }
    }

}
