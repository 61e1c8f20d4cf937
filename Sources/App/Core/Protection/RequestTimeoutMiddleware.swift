import NIOConcurrencyHelpers
import NIOCore
import Providers
import Vapor

/// A request that has not produced its response head in `timeout` is answered 503 at once (event
/// streams produce theirs at once and then run as long as they like). The handler's task is
/// cancelled; work it already handed elsewhere (a database query) finishes in the background,
/// bounded by its own timeouts.
struct RequestTimeoutMiddleware: AsyncMiddleware {
    let timeout: Duration
    /// Requests that may take longer (an upload streams its body before it answers), and how long.
    var longer: @Sendable (Request) -> Duration? = { _ in nil }

    /// The time `request` has to produce its response head.
    func timeout(for request: Request) -> Duration { longer(request) ?? timeout }

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let timeout = self.timeout(for: request)
        return try await withCheckedThrowingContinuation { continuation in
            let outcome = FirstOutcome(continuation)
            // The handler runs in a task of its own so that the answer can go before it ends; the
            // deadline is a timer on the request's event loop (cheaper than a sleeping task).
            let handler = Task {
                do { outcome.resume(with: .success(try await next.respond(to: request))) } catch { outcome.resume(with: .failure(error)) }
            }
            let timer = request.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                let problem = HTTPProblem(.serviceUnavailable, title: "Request timed out",
                                          detail: "The server did not finish this request within \(timeout.seconds.formatted()) s.", headers: ["Retry-After": "5"])
                if outcome.resume(with: .failure(problem)) {
                    request.logger.warning("request timed out", metadata: ["timeout": "\(timeout)"])
                    handler.cancel()
                }
            }
            outcome.onResume { timer.cancel() }
        }
    }
}

/// Resumes a continuation with whichever outcome comes first.
private final class FirstOutcome: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Response, any Error>?
        var onResume: (@Sendable () -> Void)?
    }

    private let state: NIOLockedValueBox<State>

    init(_ continuation: CheckedContinuation<Response, any Error>) {
        state = NIOLockedValueBox(State(continuation: continuation, onResume: nil))
    }

    /// Resumes unless already resumed; true when this call did.
    @discardableResult
    func resume(with result: Result<Response, any Error>) -> Bool {
        let taken = state.withLockedValue { state -> State in
            let taken = state
            state = State()
            return taken
        }
        guard let continuation = taken.continuation else { return false }
        continuation.resume(with: result)
        taken.onResume?()
        return true
    }

    /// Runs `action` when the continuation is resumed (at once if it already was).
    func onResume(_ action: @escaping @Sendable () -> Void) {
        let alreadyResumed = state.withLockedValue { state -> Bool in
            guard state.continuation != nil else { return true }
            state.onResume = action
            return false
        }
        if alreadyResumed { action() }
    }
}
