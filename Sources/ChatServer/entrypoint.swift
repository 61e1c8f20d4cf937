import App
import Foundation
import Logging
import Vapor

/// Process start: read the settings (a bad one stops here with one line), set up logging,
/// build and configure the application, run the requested subcommand, shut down.
@main
enum Entrypoint {
    static func main() async {
        let environment: Environment
        let settings: Settings
        do {
            environment = try Environment.detect()
            settings = try Settings.load(environmentName: environment.name)
        } catch let error as SettingsError {
            fail("configuration error: \(error)")
        } catch {
            fail("could not read the configuration: \(error)")
        }

        // Production logs are one JSON object per line (LOG_FORMAT=json, the default without DEBUG).
        LoggingSystem.bootstrap { label in
            if settings.protection.jsonLogs {
                return JSONLogHandler(label: label, level: settings.logLevel)
            }
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = settings.logLevel
            return handler
        }

        let app: Application
        do {
            app = try await Application.make(environment)
        } catch {
            fail("could not start: \(error)")
        }
        do {
            try await configure(app, settings: settings)
            try await app.execute()
            try await app.asyncShutdown()
        } catch {
            try? await app.asyncShutdown()
            fail(DatabaseSetup.describe(error))
        }
    }

    private static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("chat-server: \(message)\n".utf8))
        exit(1)
    }
}
