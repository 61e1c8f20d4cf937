import NIOConcurrencyHelpers
import Vapor

/// What people do to their own account (`/auth/…`, a signed-in session, never an API key): rename
/// it, change its password, sign out everywhere, delete it, take everything away as a ZIP.
struct AccountController: RouteCollection {
    let accounts: AccountService
    let chats: ChatService
    let export: AccountExport
    /// Signed-in sessions only (API keys are refused on `/auth/`).
    let requireSession: AccessTokenMiddleware
    /// The per-client limit against guessing: a password is checked here too.
    let authLimit: RouteRateLimitMiddleware
    /// The account's budget of wrong passwords, shared with signing in: a stolen session cannot
    /// guess the password here faster than at the sign-in form.
    let loginThrottle: LoginThrottle
    /// Accounts with an export being written on this instance: one at a time each.
    let exporting = NIOLockedValueBox<Set<UUID>>([])

    func boot(routes: any RoutesBuilder) throws {
        let auth = routes.grouped("auth").grouped(requireSession)
        auth.patch("me", use: rename)
        auth.get("me", "export", use: exportArchive)
        let guarded = auth.grouped(authLimit)
        guarded.post("password", use: changePassword)
        guarded.post("sessions", "revoke", use: signOutEverywhere)
        guarded.delete("me", use: delete)
    }

    /// `PATCH /auth/me/ {"name"}`: the display name (empty clears it).
    func rename(req: Request) async throws -> UserResponse {
        let name = try req.decodeJSON(RenameRequest.self).validated()
        let user = try await Self.stored(req)
        try await accounts.rename(user, to: name, on: req.db)
        return try UserResponse(user)
    }

    /// `POST /auth/password/`: a new password; every other session is signed out, and the
    /// `Session` answered is the one that lives.
    func changePassword(req: Request) async throws -> Response {
        let body = try req.decodeJSON(ChangePasswordRequest.self).validated()
        let user = try await Self.stored(req)
        let attempt = try await loginThrottle.begin(email: user.email, request: req)
        let tokens = try await refusingAsFields { try await accounts.changePassword(of: user, current: body.current, new: body.new, on: req.db) }
        try await loginThrottle.passed(attempt)
        req.logger.notice("password changed by its owner; every other session signed out", metadata: ["user": "\(user.id?.lowercased ?? "?")"])
        return try await SessionResponse(user: user, tokens: tokens).encodeResponse(for: req)
    }

    /// `POST /auth/sessions/revoke/`: every session of the account ends, this one included.
    func signOutEverywhere(req: Request) async throws -> HTTPStatus {
        try await accounts.signOutEverywhere(try await Self.stored(req), on: req.db)
        return .noContent
    }

    /// `DELETE /auth/me/ {"password"}`: the account and all it owns, in one transaction; its usage
    /// is kept without it.
    func delete(req: Request) async throws -> HTTPStatus {
        let password = try (req.body.data == nil ? DeleteAccountRequest() : req.decodeJSON(DeleteAccountRequest.self)).validated()
        let user = try await Self.stored(req)
        // The operator's own accounts go through the admin, by another superuser (who may be the last one).
        guard !user.isSuperuser else { throw AccountsError.superuserDeletion }
        let attempt = user.passwordHash == nil ? nil : try await loginThrottle.begin(email: user.email, request: req)
        try await refusingAsFields {
            try await accounts.confirmOwnership(of: user, password: password, accessTokenID: req.accessTokenID,
                                                tokenIssuedAt: req.accessTokenIssuedAt, on: req.db)
        }
        if let attempt { try await loginThrottle.passed(attempt) }
        // Only as checked: a password change or a sign-out everywhere since then wins.
        let chatCount = try await chats.deleteUser(user, accounts: accounts, asChecked: true, on: req.db)
        req.logger.notice("account deleted by its owner", metadata: ["user": "\(user.id?.lowercased ?? "?")", "chats": "\(chatCount)"])
        return .noContent
    }

    /// `GET /auth/me/export/`: a ZIP of everything, written as it is read. It stops (cut short)
    /// when the session is signed out or the account goes meanwhile, as a stream does.
    func exportArchive(req: Request) async throws -> Response {
        let user = try await Self.stored(req)
        let id = try user.requireID()
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .contentType, value: "application/zip")
        headers.replaceOrAdd(name: .contentDisposition, value: ContentDisposition.header(name: AccountExport.fileName(at: export.clock.now())))
        headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        // A HEAD gets the headers alone: no body is written, so nothing is read (or held) for it.
        if req.method == .HEAD { return Response(status: .ok, headers: headers) }
        let files = try await export.files(of: user, on: req.db)
        guard exporting.withLockedValue({ $0.insert(id).inserted }) else { throw AccountsError.exportInProgress }
        let (export, exporting, db, logger) = (export, exporting, req.db, req.logger)
        let issuedAt = req.accessTokenIssuedAt ?? .distantPast
        // Between entries: the session still signed in, the account still there.
        let stillSignedIn: @Sendable () async throws -> Void = {
            guard let now = try await User.findForRequest(id, on: db), now.isActive,
                  now.sessionsRevokedAt.map({ issuedAt >= $0 }) ?? true else { throw AccountsError.invalidToken("Signed out during the export.") }
        }
        return Response(status: .ok, headers: headers, body: .init(asyncStream: { writer in
            defer { exporting.withLockedValue { _ = $0.remove(id) } }
            do {
                try await export.write(user, files: files, on: db, checking: stillSignedIn) { piece in try await writer.writeBuffer(piece) }
                try await writer.write(.end)
            } catch {
                // The headers are gone: the archive is cut short (no central directory), which any unzip reports.
                logger.error("account export failed", metadata: ["user": "\(id.lowercased)", "error": "\(String(reflecting: error))"])
                try? await writer.write(.error(error))
            }
        }))
    }

    /// The account as stored (the request's copy lacks the password hash).
    private static func stored(_ req: Request) async throws -> User {
        guard let user = try await User.find(try req.currentUser.requireID(), on: req.db), user.isActive else {
            throw AccountsError.invalidToken("The account is no longer active.")
        }
        return user
    }

    /// A refusal of the account service as the field errors of a 400.
    private func refusingAsFields<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let refused as AccountService.SelfServiceRefused {
            throw RequestError.invalidFields([refused.field: refused.problems])
        }
    }
}

/// `PATCH /auth/me/`.
struct RenameRequest: Decodable {
    var name: String?

    func validated() throws(RequestError) -> String {
        var errors = FieldErrors()
        guard let raw = name else { throw RequestError.invalidFields(["name": ["This field is required."]]) }
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        errors.checkText(name, "name")
        errors.checkLength(name, "name", .name)
        try errors.throwIfAny()
        return name
    }
}

/// `POST /auth/password/`.
struct ChangePasswordRequest: Decodable {
    var currentPassword: String?
    var newPassword: String?

    enum CodingKeys: String, CodingKey { case currentPassword = "current_password", newPassword = "new_password" }

    func validated() throws(RequestError) -> (current: String, new: String) {
        var errors = FieldErrors()
        let current = errors.required(currentPassword, "current_password")
        let new = errors.required(newPassword, "new_password")
        if current.utf8.count > PasswordService.maxBytes { errors.add("current_password", "The current password is wrong.") }
        try errors.throwIfAny()
        return (current, new)
    }
}

/// `DELETE /auth/me/`: the password, for an account that has one.
struct DeleteAccountRequest: Decodable {
    var password: String?

    func validated() throws(RequestError) -> String? {
        if let password, password.utf8.count > PasswordService.maxBytes {
            throw RequestError.invalidFields(["password": ["The password is wrong."]])
        }
        return password
    }
}
