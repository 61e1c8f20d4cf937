import AsyncHTTPClient
import Foundation
import NIOCore

/// One provider API's wire format, as the streaming client (``StreamingClient``) needs it: how a
/// reply's request is made, how its stream reads (``WireReader``), what an error answer means, and
/// how the provider's models are listed. The retries, timeouts and cancellation are the client's,
/// the same for every provider.
public protocol StreamingWire: Sendable {
    associatedtype Reader: WireReader
    var settings: ClientSettings { get }
    /// The provider's name in errors and logs.
    var name: String { get }
    /// The HTTP request of a streaming reply to `request`.
    func replyRequest(_ request: ModelRequest) throws -> HTTPClient.Request
    /// What an answer with status `status` other than 200, with `body`, means.
    func error(status: Int, body: Data, retryAfter: Duration?) -> ProviderError
    /// The request that lists the provider's models.
    func modelsRequest() throws -> HTTPClient.Request
    /// The model ids in a models list answer.
    func models(in body: Data) throws -> [String]
}

/// Reads one attempt's stream of server-sent events into ``ModelStreamEvent``s, on the thread that
/// received the bytes; a fresh reader per attempt.
public protocol WireReader {
    init()
    /// Reads `event`, handing out what it means; answers the completion once the reply is finished.
    mutating func read(_ event: ServerSentEventParser.RawEvent, emit: (ModelStreamEvent) -> Void) throws(ProviderError) -> ModelCompletion?
    /// The stream ended without `read` answering a completion: the completion when that is a normal
    /// end for this format, else the error (a stream cut short), with the usage reported so far.
    mutating func end(emit: (ModelStreamEvent) -> Void) -> Result<ModelCompletion, ProviderError>
}

/// What every streaming client needs, whatever the provider: retries and timeouts, and the clock
/// and the sleep they run on.
public struct ClientSettings: Sendable {
    public var retries: RetryPolicy
    /// Opening the connection.
    public var connectTimeout: Duration
    /// From sending the request until the response starts.
    public var firstByteTimeout: Duration
    /// The longest silence between two pieces of a streaming reply.
    public var idleTimeout: Duration
    /// The clock the two timeouts above run on; tests move a manual one.
    public var clock: any Clock<Duration>
    /// Waits between retries; tests substitute one that records the waits and returns at once.
    public var sleep: @Sendable (Duration) async throws -> Void
    /// The largest event of a reply stream a client holds: a provider that sends a longer one (a
    /// line without end) fails the reply rather than fill the memory.
    public var maxEventBytes: Int

    public init(retries: RetryPolicy = RetryPolicy(), connectTimeout: Duration = .seconds(10), firstByteTimeout: Duration = .seconds(60),
                idleTimeout: Duration = .seconds(60), clock: any Clock<Duration> = ContinuousClock(),
                sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
                maxEventBytes: Int = 16 << 20) {
        self.maxEventBytes = maxEventBytes
        self.retries = retries
        self.connectTimeout = connectTimeout
        self.firstByteTimeout = firstByteTimeout
        self.idleTimeout = idleTimeout
        self.clock = clock
        self.sleep = sleep
    }
}

/// A header every request to a provider carries: the instance that sent it, so that a provider that
/// is in fact this server (`/v1`) can refuse a request that came back to it.
public enum RelayHeader {
    public static let name = "x-chatserver-relay"
}
