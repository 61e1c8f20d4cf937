import Vapor

/// `createsuperuser`: makes a staff superuser who can sign in to `/admin/`.
/// Interactive by default; `--email` with `--password-stdin`, or `--noinput` with
/// `CHAT_SUPERUSER_PASSWORD` (and `CHAT_SUPERUSER_EMAIL`), for scripts.
struct CreateSuperuserCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "email", help: "The superuser's email.")
        var email: String?
        @Option(name: "name", help: "The superuser's display name.")
        var name: String?
        @Flag(name: "password-stdin", help: "Read the password from the first line of standard input.")
        var passwordFromStdin: Bool
        @Flag(name: "noinput", help: "Ask nothing: take the email from --email or CHAT_SUPERUSER_EMAIL and the password from CHAT_SUPERUSER_PASSWORD.")
        var noInput: Bool
        init() {}
    }

    let accounts: AccountService
    let autoMigrate: Bool
    let environmentEmail: String?
    let environmentPassword: String?

    var help: String { "Creates a superuser (staff, all permissions) for the admin at /admin/." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        if autoMigrate { try await MigrationRunner.applyPending(on: app) }
        let console = context.console

        let email: String
        let password: String
        if signature.noInput {
            guard let given = signature.email ?? environmentEmail else {
                throw CommandFailure(description: "--noinput needs --email or CHAT_SUPERUSER_EMAIL")
            }
            guard let secret = environmentPassword, !secret.isEmpty else {
                throw CommandFailure(description: "--noinput needs CHAT_SUPERUSER_PASSWORD")
            }
            (email, password) = (given, secret)
        } else if signature.passwordFromStdin {
            guard let given = signature.email else { throw CommandFailure(description: "--password-stdin needs --email") }
            (email, password) = (given, console.input(isSecure: false))
        } else {
            email = try await askEmail(console, given: signature.email, on: app)
            password = try askPassword(console, email: email)
        }

        let normalized = User.normalize(email: email)
        guard EmailAddress.isValid(normalized) else { throw CommandFailure(description: "'\(email)' is not a valid email address") }
        let problems = PasswordService.problems(with: password, email: normalized)
        guard problems.isEmpty else { throw CommandFailure(description: "password refused: " + problems.joined(separator: " ")) }
        do {
            _ = try await accounts.createUser(email: normalized, password: password, name: signature.name ?? "",
                                              isStaff: true, isSuperuser: true, emailVerified: true, on: app.db)
        } catch AccountsError.emailTaken {
            throw CommandFailure(description: "a user with the email \(normalized) already exists")
        }
        console.print("Superuser \(normalized) created. Sign in at /admin/.")
    }

    private func askEmail(_ console: any Console, given: String?, on app: Application) async throws -> String {
        if let given { return given }
        for _ in 1...Self.attempts {
            let email = User.normalize(email: console.ask("Email"))
            if !EmailAddress.isValid(email) {
                console.error("Enter a valid email address.")
            } else if try await User.find(email: email, on: app.db) != nil {
                console.error("A user with that email already exists.")
            } else {
                return email
            }
        }
        throw CommandFailure(description: "no usable email after \(Self.attempts) attempts")
    }

    private func askPassword(_ console: any Console, email: String) throws -> String {
        for _ in 1...Self.attempts {
            console.output("Password: ", newLine: false)
            let password = console.input(isSecure: true)
            console.output("Password (again): ", newLine: false)
            let again = console.input(isSecure: true)
            guard password == again else {
                console.error("The passwords do not match.")
                continue
            }
            let problems = PasswordService.problems(with: password, email: email)
            if problems.isEmpty { return password }
            problems.forEach { console.error($0) }
        }
        throw CommandFailure(description: "no usable password after \(Self.attempts) attempts")
    }

    /// How often a prompt is repeated before giving up (so closed input cannot loop forever).
    private static let attempts = 3
}
