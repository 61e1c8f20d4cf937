import Vapor

/// Signing in through OpenID providers: `/auth/google/{login,callback,exchange}/` for Google,
/// `/auth/oidc/<name>/{login,callback}/` for the others, and `POST /auth/exchange/` for a code of
/// any. A provider that is not configured is 404.
struct OpenIDAuthController: RouteCollection {
    let signIns: OpenIDSignIns
    let secureCookies: Bool

    /// The cookie that binds a begun sign-in to its browser, scoped to the provider's routes.
    static func cookieName(_ provider: OpenIDProviderSettings) -> String {
        provider.kind == .google ? "chat_google_login" : "chat_oidc_login"
    }

    func boot(routes: any RoutesBuilder) throws {
        let google = routes.grouped("auth", "google")
        google.get("login") { req in try await login(req, try signIns.google.orThrow(.notConfigured("Google"))) }
        google.get("callback") { req in try await callback(req, try signIns.google.orThrow(.notConfigured("Google"))) }
        google.post("exchange", use: exchange)
        let oidc = routes.grouped("auth", "oidc", ":provider")
        oidc.get("login") { req in try await login(req, try provider(req)) }
        oidc.get("callback") { req in try await callback(req, try provider(req)) }
        routes.grouped("auth").post("exchange", use: exchange)
    }

    private func provider(_ req: Request) throws(SignInError) -> OpenIDSignIn {
        let name = req.parameters.get("provider") ?? ""
        guard let signIn = signIns.generic(name) else { throw .notConfigured(name) }
        return signIn
    }

    /// Sends the browser to the provider, remembering the attempt in a short-lived cookie. A
    /// provider that cannot be reached sends the browser back with `#error=provider_unavailable`.
    func login(_ req: Request, _ signIn: OpenIDSignIn) async throws -> Response {
        let target = try (req.query[String.self, at: "next"] ?? req.query[String.self, at: "redirect"]).map(signIns.returnTarget)
        let response: Response
        do {
            let (url, browserSecret) = try await signIn.begin(returnTo: target, on: req.db)
            response = Self.found(url)
            response.cookies[Self.cookieName(signIn.provider)] = HTTPCookies.Value(
                string: browserSecret, maxAge: Int(OpenIDSignIn.attemptLifetime), path: signIn.provider.basePath,
                isSecure: secureCookies, isHTTPOnly: true, sameSite: .lax
            )
        } catch let failure as SignInError {
            response = Self.failed(failure, returningTo: target ?? signIns.defaultReturn)
        }
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    /// Where the provider sends the browser back. A browser is sent on to the return target with
    /// a one-time code (or an error code) in the URL's fragment — never the tokens; a client that
    /// asks for JSON gets the `Session` itself.
    func callback(_ req: Request, _ signIn: OpenIDSignIn) async throws -> Response {
        let wantsJSON = req.headers.accept.mediaTypes.contains(.json) && !req.headers.accept.mediaTypes.contains(.html)
        var target = signIns.defaultReturn
        let cookie = Self.cookieName(signIn.provider)
        let response: Response
        do {
            let attempt = try await signIn.claimAttempt(
                state: req.query[String.self, at: "state"], browserSecret: req.cookies[cookie]?.string, on: req.db
            )
            // Stored by `login` after the same check; checked again so that only a parsed target reaches a header.
            if let stored = attempt.returnTo { target = try signIns.returnTarget(stored) }
            if let declined = req.query[String.self, at: "error"] {
                throw SignInError.declined(provider: signIn.provider.displayName, error: String(declined.prefix(100)))
            }
            let signedIn = try await signIn.finish(code: req.query[String.self, at: "code"], attempt: attempt, on: req.db)
            if wantsJSON {
                let tokens = try await signIns.codes.sessions.start(for: signedIn.user, on: req.db)
                response = try await SessionResponse(user: signedIn.user, tokens: tokens, notices: signedIn.notices).encodeResponse(for: req)
            } else {
                let code = try await signIns.codes.issue(for: signedIn, on: req.db)
                response = Self.found(target.withFragment([("code", code)]))
            }
        } catch let failure as SignInError {
            if wantsJSON { throw failure }
            response = Self.failed(failure, returningTo: target)
        } catch {
            // This server's failure (the database away, say), not the provider's: a JSON client
            // gets it as it is (503 when the database is away); a browser goes back told to retry.
            req.logger.error("openid sign-in failed", metadata: ["provider": "\(signIn.provider.name)", "error": "\(String(reflecting: error))"])
            if wantsJSON { throw error }
            response = Self.found(target.withFragment([
                ("error", "server_error"), ("error_description", "The server could not complete the sign-in; try again."),
            ]))
        }
        response.cookies[cookie] = HTTPCookies.Value(
            string: "", expires: Date(timeIntervalSince1970: 0), maxAge: 0, path: signIn.provider.basePath,
            isSecure: secureCookies, isHTTPOnly: true, sameSite: .lax
        )
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    /// `POST /auth/exchange/` (and `/auth/google/exchange/`): the one-time code from a callback's
    /// redirect, of any provider, for the `Session`.
    func exchange(req: Request) async throws -> Response {
        let code = try req.decodeJSON(CodeExchangeRequest.self).validated()
        let (signedIn, tokens) = try await signIns.codes.redeem(code, on: req.db)
        let response = try await SessionResponse(user: signedIn.user, tokens: tokens, notices: signedIn.notices).encodeResponse(for: req)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    /// Back to `target` with the failure's code and description in the fragment.
    static func failed(_ failure: SignInError, returningTo target: RedirectTarget) -> Response {
        found(target.withFragment([("error", failure.code), ("error_description", failure.problem.detail ?? failure.problem.title)]))
    }

    /// A 302 to `location`, which must come from a ``RedirectTarget`` or the provider's endpoints.
    static func found(_ location: String) -> Response {
        Response(status: .found, headers: ["Location": location])
    }
}

private extension Optional where Wrapped == OpenIDSignIn {
    func orThrow(_ error: SignInError) throws(SignInError) -> OpenIDSignIn {
        guard let self else { throw error }
        return self
    }
}

/// The body of `POST /auth/exchange/`.
struct CodeExchangeRequest: Decodable {
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
    let signIns: OpenIDSignIns
    let passwordLogin: Bool
    let signupOpen: Bool
    let publicURL: String

    struct Providers: Content {
        let password: Bool
        let signup: Bool
        let google: Bool
        let oidc: [OIDC]
    }

    struct OIDC: Content {
        let name: String
        let display_name: String
        let login_url: String
    }

    func boot(routes: any RoutesBuilder) throws {
        routes.get("auth", "providers", use: providers)
    }

    func providers(req: Request) -> Providers {
        Providers(
            password: passwordLogin, signup: signupOpen && passwordLogin, google: signIns.google != nil,
            oidc: signIns.providers.filter { $0.provider.kind == .generic }.map {
                OIDC(name: $0.provider.name, display_name: $0.provider.displayName, login_url: publicURL + $0.provider.loginPath)
            }
        )
    }
}
