import Vapor

/// Why a sign-in through an OpenID provider did not happen. Each has a code for the frontend
/// (`#error=<code>`) and a problem for JSON clients; `provider` is the provider's display name.
enum SignInError: HTTPProblemConvertible, Equatable {
    /// No such provider is configured (`name` as asked for; "Google" for Google's routes).
    case notConfigured(String)
    case returnNotAllowed(String)
    /// The provider sent the user back with an error, e.g. `access_denied` when they declined.
    case declined(provider: String, error: String)
    /// Missing, unknown, expired, used, begun in another browser or at another provider.
    case invalidState(String)
    case exchangeFailed(provider: String, reason: String)
    case invalidIDToken(provider: String, reason: String)
    case emailNotVerified(provider: String)
    /// The email's domain is not one of the provider's `ALLOWED_DOMAINS`.
    case domainNotAllowed(String)
    /// The email belongs to an account this identity may not join.
    case accountExists(provider: String)
    case accountInactive
    case providerUnavailable(provider: String, reason: String)
    /// The one-time code of `POST /auth/exchange/` is unknown, used or expired.
    case invalidCode

    /// The code given to the frontend.
    var code: String {
        switch self {
        case .notConfigured: "not_configured"
        case .returnNotAllowed: "invalid_request"
        case .declined(_, let error): error == "access_denied" ? "access_denied" : "provider_error"
        case .invalidState: "invalid_state"
        case .exchangeFailed: "exchange_failed"
        case .invalidIDToken: "invalid_token"
        case .emailNotVerified: "email_not_verified"
        case .domainNotAllowed: "domain_not_allowed"
        case .accountExists: "account_exists"
        case .accountInactive: "account_inactive"
        case .providerUnavailable: "provider_unavailable"
        case .invalidCode: "invalid_code"
        }
    }

    var problem: HTTPProblem {
        switch self {
        case .notConfigured(let name):
            return name == "Google"
                ? HTTPProblem(.notFound, title: "Google sign-in is not configured",
                              detail: "This server has no GOOGLE_CLIENT_ID; sign in another way.")
                : HTTPProblem(.notFound, title: "Unknown sign-in provider", detail: "No OpenID provider of this name is configured.")
        case .returnNotAllowed:
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "next: not an allowed place to return to.",
                               fieldErrors: ["next": ["Must be a path on this server or a URL on FRONTEND_URL or CORS_ALLOWED_ORIGINS, without a fragment."]])
        case .declined(let provider, let error):
            return HTTPProblem(.unauthorized, title: "\(provider) sign-in declined", detail: "\(provider) answered \(error).")
        case .invalidState(let reason):
            return HTTPProblem(.badRequest, title: "Invalid sign-in state", detail: reason)
        case .exchangeFailed(let provider, let reason):
            return HTTPProblem(.unauthorized, title: "\(provider) sign-in failed", detail: reason)
        case .invalidIDToken(let provider, let reason):
            return HTTPProblem(.unauthorized, title: "Invalid \(provider) ID token", detail: reason)
        case .emailNotVerified(let provider):
            return HTTPProblem(.forbidden, title: "Email not verified", detail: "\(provider) has not verified this account's email address.")
        case .domainNotAllowed(let provider):
            return HTTPProblem(.forbidden, title: "Email domain not allowed",
                               detail: "Accounts of this email domain may not sign in through \(provider) here.")
        case .accountExists(let provider):
            return HTTPProblem(.conflict, title: "Account exists",
                               detail: "An account with this email already exists; sign in to it as before. This server does not join \(provider) identities to existing accounts.")
        case .accountInactive:
            return HTTPProblem(.forbidden, title: "Account inactive", detail: "The account for this sign-in is deactivated.")
        case .providerUnavailable(let provider, let reason):
            return HTTPProblem(.badGateway, title: "\(provider) unavailable", detail: reason)
        case .invalidCode:
            return HTTPProblem(.badRequest, title: "Invalid sign-in code",
                               detail: "This sign-in code is unknown, was already used, or has expired; sign in again.",
                               fieldErrors: ["code": ["Unknown, used or expired."]])
        }
    }
}
