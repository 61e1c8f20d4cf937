import Vapor

/// What can go wrong when signing up, signing in or presenting a token.
public enum AccountsError: HTTPProblemConvertible, Equatable {
    case emailTaken
    /// Wrong password, unknown email and inactive account all answer this, alike.
    case invalidCredentials
    case missingToken
    case invalidToken(String)
    case refreshTokenReused
    /// `SIGNUP=closed` (or `PASSWORD_LOGIN=false`): accounts come from elsewhere.
    case signupClosed
    /// `PASSWORD_LOGIN=false`: people sign in through an OpenID provider.
    case passwordLoginDisabled
    /// Deleting an account without a password needs a sign-in within the last five minutes.
    case reauthenticationRequired
    /// An export of this account is being written already.
    case exportInProgress
    /// Past what one ZIP without ZIP64 holds (65,535 entries, 4 GiB).
    case exportTooLarge
    /// A superuser's account is deleted in the admin, by another superuser.
    case superuserDeletion

    public var problem: HTTPProblem {
        switch self {
        case .emailTaken:
            return HTTPProblem(.conflict, title: "Email already registered",
                               detail: "An account with this email already exists; sign in instead.",
                               fieldErrors: ["email": ["An account with this email already exists."]])
        case .invalidCredentials:
            return HTTPProblem(.unauthorized, title: "Invalid credentials",
                               detail: "No active account was found with this email and password.")
        case .missingToken:
            return HTTPProblem(.unauthorized, title: "Authentication required",
                               detail: "Send an access token: Authorization: Bearer <token>.",
                               headers: ["WWW-Authenticate": "Bearer"])
        case .invalidToken(let reason):
            return HTTPProblem(.unauthorized, title: "Invalid token", detail: reason,
                               headers: ["WWW-Authenticate": #"Bearer error="invalid_token""#])
        case .signupClosed:
            return HTTPProblem(.forbidden, title: "Sign-up closed",
                               detail: "This server makes no accounts here; sign in through your organisation's provider, or ask an administrator.",
                               code: "signup_closed")
        case .passwordLoginDisabled:
            return HTTPProblem(.forbidden, title: "Password sign-in disabled",
                               detail: "This server signs people in through an OpenID provider only (GET /auth/providers/ lists them).",
                               code: "password_login_disabled")
        case .reauthenticationRequired:
            return HTTPProblem(.forbidden, title: "Sign in again",
                               detail: "This account has no password; sign in again (within the last 5 minutes) to confirm it is you.",
                               code: "reauthentication_required")
        case .exportTooLarge:
            return HTTPProblem(.payloadTooLarge, title: "Export too large",
                               detail: "This account holds more than one ZIP can (65,535 entries or 4 GiB); delete some files or chats first.",
                               code: "export_too_large")
        case .superuserDeletion:
            return HTTPProblem(.forbidden, title: "Superuser",
                               detail: "A superuser's account is deleted in the admin, by another superuser.", code: "superuser")
        case .exportInProgress:
            return HTTPProblem(.conflict, title: "Export in progress",
                               detail: "An export of this account is being written; wait for it to finish.", code: "export_in_progress")
        case .refreshTokenReused:
            return HTTPProblem(.unauthorized, title: "Invalid token",
                               detail: "This refresh token was already used; every session it belongs to has been signed out.",
                               headers: ["WWW-Authenticate": #"Bearer error="invalid_token""#])
        }
    }
}
