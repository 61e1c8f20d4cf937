import ConsoleKit
import Testing
import NIOConcurrencyHelpers
import Vapor

/// A console that answers prompts from a script and records what was written, for running
/// commands in tests.
final class ScriptedConsole: Console, Sendable {
    private struct State {
        var answers: [String]
        var output = ""
        var userInfo: [AnySendableHashable: any Sendable] = [:]
    }

    private let state: NIOLockedValueBox<State>

    init(answers: [String] = []) {
        state = .init(State(answers: answers))
    }

    var output: String { state.withLockedValue { $0.output } }

    var size: (width: Int, height: Int) { (120, 40) }

    var userInfo: [AnySendableHashable: any Sendable] {
        get { state.withLockedValue { $0.userInfo } }
        set { state.withLockedValue { $0.userInfo = newValue } }
    }

    func input(isSecure: Bool) -> String {
        state.withLockedValue { $0.answers.isEmpty ? "" : $0.answers.removeFirst() }
    }

    func output(_ text: ConsoleText, newLine: Bool) {
        state.withLockedValue { $0.output += text.description + (newLine ? "\n" : "") }
    }

    func report(error: String, newLine: Bool) {
        state.withLockedValue { $0.output += error + (newLine ? "\n" : "") }
    }

    func clear(_ type: ConsoleClear) {}
}

extension TestApp {
    /// Runs the subcommand `name` as `chat-server name arguments…`, answering prompts from `answers`.
    func run(_ name: String, _ arguments: [String] = [], answers: [String] = []) async throws -> String {
        let console = ScriptedConsole(answers: answers)
        try await runCommand(name, arguments, on: app, console: console)
        return console.output
    }
}

/// Runs the subcommand `name` of `app` with `console` as its terminal.
func runCommand(_ name: String, _ arguments: [String] = [], on app: Application, console: ScriptedConsole) async throws {
    let command = try #require(app.asyncCommands.commands[name])
    var context = CommandContext(console: console, input: CommandInput(arguments: ["chat-server"] + arguments))
    context.application = app
    try await command.run(using: &context)
}
