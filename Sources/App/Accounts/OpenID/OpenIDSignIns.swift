import Logging
import Vapor

/// Every OpenID provider this server signs people in through, by name, with what they share: the
/// one-time codes and the places a sign-in may return to.
struct OpenIDSignIns: Sendable {
    /// In `OIDC_PROVIDERS` order, Google's first.
    let providers: [OpenIDSignIn]
    let codes: SignInCodes
    /// Origins a sign-in may return to (the frontend's); paths on this server are always allowed.
    let returnOrigins: Set<String>
    /// Where a sign-in returns when it was not given `next`.
    let defaultReturn: RedirectTarget

    init(settings: Settings, client: any Client, accounts: AccountService, sessions: SessionIssuer, clock: any WallClock) throws {
        let linking = OpenIDAccountLinking(accounts: accounts, clock: clock)
        providers = settings.openID.map { provider in
            let openID = OpenIDClient(provider: provider, client: client)
            return OpenIDSignIn(provider: provider, openID: openID, endpoints: OpenIDEndpointSource(openID: openID, clock: clock),
                                keys: OpenIDKeySet(openID: openID, clock: clock), linking: linking, clock: clock)
        }
        codes = SignInCodes(sessions: sessions, clock: clock)
        returnOrigins = settings.signInReturnOrigins
        defaultReturn = try settings.defaultSignInReturn()
    }

    var google: OpenIDSignIn? { providers.first { $0.provider.kind == .google } }

    /// The provider of `/auth/oidc/<name>/` (never Google, which has its own routes).
    func generic(_ name: String) -> OpenIDSignIn? {
        providers.first { $0.provider.kind == .generic && $0.provider.name == name }
    }

    /// Where a sign-in may return to: `next` when it is allowed (else ``SignInError/returnNotAllowed(_:)``).
    func returnTarget(_ raw: String) throws(SignInError) -> RedirectTarget {
        guard let target = RedirectTarget(raw, allowedOrigins: returnOrigins) else { throw .returnNotAllowed(raw) }
        return target
    }

    /// Reads every discovered provider's document now, each on its own, and says in the log which
    /// answered and which did not (and why): a provider that is down, slow or lies about its
    /// issuer keeps only its own sign-in from working, and is asked again when someone uses it.
    func discoverAll(logger: Logger) async {
        await withTaskGroup(of: Void.self) { group in
            for signIn in providers where signIn.provider.kind == .generic {
                group.addTask {
                    let provider = signIn.provider
                    do throws(SignInError) {
                        _ = try await signIn.endpoints.endpoints()
                        logger.info("OpenID provider \(provider.name): discovered \(provider.issuer ?? "")")
                    } catch {
                        logger.error("OpenID provider \(provider.name): sign-in unavailable until its discovery document is read: \(error.problem.detail ?? error.code)")
                    }
                }
            }
        }
    }

    /// What the log says at start-up.
    var summary: String {
        providers.isEmpty ? "OpenID sign-in: none (GOOGLE_CLIENT_ID and OIDC_PROVIDERS are not set)"
            : "OpenID sign-in: " + providers.map { "\($0.provider.name) (\($0.provider.displayName))" }.joined(separator: ", ")
    }
}
