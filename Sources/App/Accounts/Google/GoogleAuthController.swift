import Vapor

/// `/auth/google/login/` and `/auth/google/callback/`. Both are 404 when Google sign-in is not configured.
struct GoogleAuthController: RouteCollection {
    let signIn: GoogleSignIn?
    let frontendURL: String
    let secureCookies: Bool

    static let cookieName = "chat_google_login"

    func boot(routes: any RoutesBuilder) throws {
        let google = routes.grouped("auth", "google")
        google.get("login", use: login)
        google.get("callback", use: callback)
    }

    /// Sends the browser to Google, remembering the attempt in a short-lived cookie.
    func login(req: Request) async throws -> Response {
        guard let signIn else { throw GoogleSignInError.notConfigured }
        let returnTo = req.query[String.self, at: "next"] ?? req.query[String.self, at: "redirect"]
        let (url, browserSecret) = try await signIn.begin(returnTo: returnTo, on: req.db)
        let response = Self.found(url)
        response.cookies[Self.cookieName] = HTTPCookies.Value(
            string: browserSecret, maxAge: Int(GoogleSignIn.attemptLifetime), path: "/auth/google/",
            isSecure: secureCookies, isHTTPOnly: true, sameSite: .lax
        )
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    /// Where Google sends the browser back. Ends with a redirect to the frontend carrying the
    /// session (or an error code) in the URL fragment, or with JSON when the request asks for it.
    func callback(req: Request) async throws -> Response {
        guard let signIn else { throw GoogleSignInError.notConfigured }
        let wantsJSON = req.headers.accept.mediaTypes.contains(.json) && !req.headers.accept.mediaTypes.contains(.html)
        var returnTo: String?
        let response: Response
        do {
            let attempt = try await signIn.claimAttempt(
                state: req.query[String.self, at: "state"], browserSecret: req.cookies[Self.cookieName]?.string, on: req.db
            )
            returnTo = attempt.returnTo
            if let declined = req.query[String.self, at: "error"] { throw GoogleSignInError.declined(declined) }
            let (user, tokens) = try await signIn.finish(code: req.query[String.self, at: "code"], attempt: attempt, on: req.db)
            let session = try SessionResponse(user: user, tokens: tokens)
            if wantsJSON {
                response = try await session.encodeResponse(for: req)
            } else {
                response = Self.found(Self.url(returnTo ?? frontendURL, fragment: [
                    ("access", tokens.access), ("refresh", tokens.refresh), ("token_type", "Bearer"), ("expires_in", String(tokens.expiresIn)),
                ]))
            }
        } catch {
            let failure = (error as? GoogleSignInError) ?? .providerUnavailable("The sign-in could not be completed.")
            if !(error is GoogleSignInError) {
                req.logger.error("google sign-in failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            if wantsJSON { throw failure }
            response = Self.found(Self.url(returnTo ?? frontendURL, fragment: [
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

    /// A 302 to `location`.
    static func found(_ location: String) -> Response {
        Response(status: .found, headers: ["Location": location])
    }

    /// `base` with its fragment replaced by the form-encoded pairs.
    static func url(_ base: String, fragment pairs: [(String, String)]) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+#")
        let fragment = pairs.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
        let withoutFragment = base.split(separator: "#", maxSplits: 1).first.map(String.init) ?? base
        return withoutFragment + "#" + fragment
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
