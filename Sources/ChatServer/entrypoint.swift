import App
import Foundation
import Logging
import NIOCore
import NIOPosix
import Vapor

/// Process start: read the settings (a bad one stops here with one line), set up logging,
/// build and configure the application, run the requested subcommand, shut down.
@main
enum Entrypoint {
    static func main() async {
        // Swift concurrency's tasks run on the server's event loops instead of a second thread pool:
        // a request's handler then continues on the thread its connection lives on, without the
        // context switches of hopping between the two (nothing here blocks a thread: bcrypt and
        // SQLite run on their own pool). First thing, before any other task starts.
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
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
