import Vapor

/// `POST /auth/register/`. Fields are optional here so every missing one is reported at once.
struct RegisterRequest: Decodable {
    var email: String?
    var password: String?
    var name: String?

    func validated() throws(RequestError) -> Registration {
        var errors = FieldErrors()
        let email = User.normalize(email: errors.required(self.email, "email"))
        let password = errors.required(self.password, "password")
        let name = (self.name ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        errors.checkText(name, "name")
        if !email.isEmpty, !EmailAddress.isValid(email) {
            errors.add("email", "Enter a valid email address.")
        }
        if !password.isEmpty {
            for problem in PasswordService.problems(with: password, email: email) { errors.add("password", problem) }
        }
        errors.checkLength(name, "name", .name)
        try errors.throwIfAny()
        return Registration(email: email, password: password, name: name)
    }
}

/// `POST /auth/login/`.
struct LoginRequest: Decodable {
    var email: String?
    var password: String?

    /// Checked before anything is looked up or counted: an email no account can have (malformed, or
    /// over 254 bytes) and a password no account can have (over 72 bytes, or with a NUL) are refused here.
    func validated() throws(RequestError) -> (email: String, password: String) {
        var errors = FieldErrors()
        let email = User.normalize(email: errors.required(self.email, "email"))
        let password = errors.required(self.password, "password")
        if !email.isEmpty, !EmailAddress.isValid(email) { errors.add("email", "Enter a valid email address.") }
        if password.utf8.count > PasswordService.maxBytes {
            errors.add("password", "Ensure this field has no more than \(PasswordService.maxBytes) bytes.")
        }
        errors.checkText(password, "password")
        try errors.throwIfAny()
        return (email, password)
    }
}

/// `POST /auth/refresh/` and `POST /auth/logout/`.
struct RefreshRequest: Decodable {
    var refresh: String?

    func validated() throws(RequestError) -> String {
        var errors = FieldErrors()
        let token = errors.required(refresh, "refresh")
        try errors.throwIfAny()
        return token
    }
}

/// The contract's `User`.
struct UserResponse: Content {
    var id: String
    var email: String
    var name: String
    var role: UserRole
    var isStaff: Bool
    var createdAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, email, name, role, isStaff = "is_staff", createdAt = "created_at"
    }

    init(_ user: User) throws {
        id = try user.requireID().lowercased
        email = user.email
        name = user.name
        role = user.role
        isStaff = user.isStaff
        createdAt = user.createdAt
    }
}

/// The contract's `Session`: who signed in, and their tokens.
struct SessionResponse: Content {
    var user: UserResponse
    var access: String
    var refresh: String
    var tokenType = "Bearer"
    var expiresIn: Int
    /// What the client must tell the user about their account; left out when there is nothing.
    var notices: [AccountNotice]?

    enum CodingKeys: String, CodingKey {
        case user, access, refresh, tokenType = "token_type", expiresIn = "expires_in", notices
    }

    init(user: User, tokens: TokenPair, notices: [AccountNotice] = []) throws {
        self.user = try UserResponse(user)
        access = tokens.access
        refresh = tokens.refresh
        expiresIn = tokens.expiresIn
        self.notices = notices.isEmpty ? nil : notices
    }
}

/// The answer to `POST /auth/refresh/`.
struct TokenPairResponse: Content {
    var access: String
    var refresh: String
    var tokenType = "Bearer"
    var expiresIn: Int

    enum CodingKeys: String, CodingKey {
        case access, refresh, tokenType = "token_type", expiresIn = "expires_in"
    }

    init(_ tokens: TokenPair) {
        access = tokens.access
        refresh = tokens.refresh
        expiresIn = tokens.expiresIn
    }
}
