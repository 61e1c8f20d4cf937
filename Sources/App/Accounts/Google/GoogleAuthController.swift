import Vapor

/// `/auth/google/login/`, `/auth/google/callback/` and `/auth/google/exchange/`. All are 404 when
/// Google sign-in is not configured.
struct GoogleAuthController: RouteCollection {
    let signIn: GoogleSignIn?
    /// Where a sign-in returns when it was not given `next`.
    let defaultReturn: RedirectTarget
    let secureCookies: Bool

    static let cookieName = "chat_google_login"

    func boot(routes: any RoutesBuilder) throws {
        let google = routes.grouped("auth", "google")
        google.get("login", use: login)
        google.get("callback", use: callback)
        google.post("exchange", use: exchange)
    }

    /// Sends the browser to Google, remembering the attempt in a short-lived cookie.
    func login(req: Request) async throws -> Response {
        guard let signIn else { throw GoogleSignInError.notConfigured }
        let target = try (req.query[String.self, at: "next"] ?? req.query[String.self, at: "redirect"]).map(signIn.returnTarget)
        let (url, browserSecret) = try await signIn.begin(returnTo: target, on: req.db)
        let response = Self.found(url)
        response.cookies[Self.cookieName] = HTTPCookies.Value(
            string: browserSecret, maxAge: Int(GoogleSignIn.attemptLifetime), path: "/auth/google/",
            isSecure: secureCookies, isHTTPOnly: true, sameSite: .lax
        )
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    /// Where Google sends the browser back. A browser is sent on to the return target with a
    /// one-time code (or an error code) in the URL's fragment — never the tokens; a client that asks
    /// for JSON gets the `Session` itself.
    func callback(req: Request) async throws -> Response {
        guard let signIn else { throw GoogleSignInError.notConfigured }
        let wantsJSON = req.headers.accept.mediaTypes.contains(.json) && !req.headers.accept.mediaTypes.contains(.html)
        var target = defaultReturn
        let response: Response
        do {
            let attempt = try await signIn.claimAttempt(
                state: req.query[String.self, at: "state"], browserSecret: req.cookies[Self.cookieName]?.string, on: req.db
            )
            // Stored by `login` after the same check; checked again so that only a parsed target reaches a header.
            if let stored = attempt.returnTo { target = try signIn.returnTarget(stored) }
            if let declined = req.query[String.self, at: "error"] { throw GoogleSignInError.declined(declined) }
            let signedIn = try await signIn.finish(code: req.query[String.self, at: "code"], attempt: attempt, on: req.db)
            if wantsJSON {
                let tokens = try await signIn.sessions.start(for: signedIn.user, on: req.db)
                response = try await SessionResponse(user: signedIn.user, tokens: tokens, notices: signedIn.notices).encodeResponse(for: req)
            } else {
                let code = try await signIn.issueCode(for: signedIn, on: req.db)
                response = Self.found(target.withFragment([("code", code)]))
            }
        } catch {
            let failure = (error as? GoogleSignInError) ?? .providerUnavailable("The sign-in could not be completed.")
            if !(error is GoogleSignInError) {
                req.logger.error("google sign-in failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            if wantsJSON { throw failure }
            response = Self.found(target.withFragment([
                ("error", failure.code), ("error_description", failure.problem.detail ?? failure.problem.title),
            ]))
        }
        response.cookies[Self.cookieName] = HTTPCookies.Value(
            string: "", expires: Date(timeIntervalSince1970: 0), maxAge: 0, path: "/auth/google/",
            isSecure: secureCookies, isHTTPOnly: true, sameSite: .lax
        )
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    /// `POST /auth/google/exchange/`: the one-time code from the callback's redirect for the `Session`.
    func exchange(req: Request) async throws -> Response {
        guard let signIn else { throw GoogleSignInError.notConfigured }
        let code = try req.decodeJSON(GoogleCodeExchangeRequest.self).validated()
        let (signedIn, tokens) = try await signIn.redeem(code: code, on: req.db)
        let response = try await SessionResponse(user: signedIn.user, tokens: tokens, notices: signedIn.notices).encodeResponse(for: req)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    /// A 302 to `location`, which must come from a ``RedirectTarget`` or the provider's settings.
    static func found(_ location: String) -> Response {
        Response(status: .found, headers: ["Location": location])
    }
}

/// The body of `POST /auth/google/exchange/`.
struct GoogleCodeExchangeRequest: Decodable {
    var code: String?

    func validated() throws(RequestError) -> String {
        var errors = FieldErrors()
        let code = errors.required(self.code, "code")
        if code.utf8.count > 128 { errors.add("code", "Ensure this field has no more than 128 characters.") }
        try errors.throwIfAny()
        return code
    }
}

/// `GET /auth/providers/`: the ways to sign in, so that a client shows only the buttons that work.
struct AuthProvidersController: RouteCollection {
    let googleConfigured: Bool

    struct Providers: Content {
        let password: Bool
        let google: Bool
    }

    func boot(routes: any RoutesBuilder) throws {
        routes.get("auth", "providers", use: providers)
    }

    func providers(req: Request) -> Providers {
        Providers(password: true, google: googleConfigured)
    }
}
