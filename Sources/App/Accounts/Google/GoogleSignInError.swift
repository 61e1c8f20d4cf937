import Vapor

/// Why a Google sign-in did not happen. Each has a code for the frontend (`#error=<code>`) and a
/// problem for JSON clients.
enum GoogleSignInError: HTTPProblemConvertible, Equatable {
    case notConfigured
    case returnNotAllowed(String)
    /// Google sent the user back with an error, e.g. `access_denied` when they declined.
    case declined(String)
    /// Missing, unknown, expired, used or begun in another browser.
    case invalidState(String)
    case exchangeFailed(String)
    case invalidIDToken(String)
    case emailNotVerified
    case accountInactive
    case providerUnavailable(String)
    /// The one-time code of `POST /auth/google/exchange/` is unknown, used or expired.
    case invalidCode

    /// The code given to the frontend.
    var code: String {
        switch self {
        case .notConfigured: "not_configured"
        case .returnNotAllowed: "invalid_request"
        case .declined(let error): error == "access_denied" ? "access_denied" : "provider_error"
        case .invalidState: "invalid_state"
        case .exchangeFailed: "exchange_failed"
        case .invalidIDToken: "invalid_token"
        case .emailNotVerified: "email_not_verified"
        case .accountInactive: "account_inactive"
        case .providerUnavailable: "provider_unavailable"
        case .invalidCode: "invalid_code"
        }
    }

    var problem: HTTPProblem {
        switch self {
        case .notConfigured:
            return HTTPProblem(.notFound, title: "Google sign-in is not configured",
                               detail: "This server has no GOOGLE_CLIENT_ID; sign in with email and password.")
        case .returnNotAllowed:
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "next: not an allowed place to return to.",
                               fieldErrors: ["next": ["Must be a path on this server or a URL on FRONTEND_URL or CORS_ALLOWED_ORIGINS, without a fragment."]])
        case .declined(let error):
            return HTTPProblem(.unauthorized, title: "Google sign-in declined", detail: "Google answered \(error).")
        case .invalidState(let reason):
            return HTTPProblem(.badRequest, title: "Invalid sign-in state", detail: reason)
        case .exchangeFailed(let reason):
            return HTTPProblem(.unauthorized, title: "Google sign-in failed", detail: reason)
        case .invalidIDToken(let reason):
            return HTTPProblem(.unauthorized, title: "Invalid Google ID token", detail: reason)
        case .emailNotVerified:
            return HTTPProblem(.forbidden, title: "Email not verified", detail: "Google has not verified this account's email address.")
        case .accountInactive:
            return HTTPProblem(.forbidden, title: "Account inactive", detail: "The account for this Google sign-in is deactivated.")
        case .providerUnavailable(let reason):
            return HTTPProblem(.badGateway, title: "Google unavailable", detail: reason)
        case .invalidCode:
            return HTTPProblem(.badRequest, title: "Invalid sign-in code",
                               detail: "This sign-in code is unknown, was already used, or has expired; sign in again.",
                               fieldErrors: ["code": ["Unknown, used or expired."]])
        }
    }
}
