import Fluent
import Foundation
import Logging
import Providers
import SQLKit

/// Names a chat made without a title once its first reply is complete: a few words from the model
/// that say what it is about (``ModelCatalog/titleModel``, else the chat's own model), or the first
/// words of the question with the offline provider. The title is stored only while the chat still
/// waits for one (a title given meanwhile wins), and every stream on the chat gets a `chat` event.
/// It runs after the reply is stored and on its own: a failure leaves the placeholder (the next
/// complete reply tries again) and never touches the reply.
struct ChatTitler: Sendable {
    let catalog: ModelCatalog
    let bus: any ChatEventBus
    let lists: ChatLists
    let database: DatabaseAccess
    let logger: Logger
    /// Where each title's model call is traced (a `chat {model}` span, purpose `title`); nil: off.
    let telemetry: Telemetry?

    /// Names `chatID` if it still waits for a title; the new title, or nil.
    @discardableResult
    func titleIfNeeded(_ chatID: UUID) async -> String? {
        do {
            let sql = try database().sql()
            guard let chat = try await sql.select().columns("model", "needs_title").from(Chat.schema)
                .where("id", .equal, SQLBind(chatID)).first(),
                try chat.decode(column: "needs_title", as: Bool.self) else { return nil }
            let conversation = try await ChatReads.messages(of: chatID, on: database())
            guard let question = conversation.first(where: { $0.role == .user }),
                  let answer = conversation.first(where: { $0.role == .assistant && $0.status == .complete }) else { return nil }
            // A question of files alone is named by them.
            let asked = question.content.isEmpty ? question.attachments.map(\.name).joined(separator: ", ") : question.content
            let chatModel = try chat.decode(column: "model", as: String.self)
            let model = catalog.titleModel ?? chatModel
            // The offline provider asks no model: the question's first words name the chat.
            let made: String?
            if catalog.isOffline {
                made = ChatTitling.firstWords(of: asked)
            } else if let route = catalog.route(model) {
                let request = ChatTitling.request(question: asked, answer: answer.content, model: route.model)
                made = ChatTitling.clean(try await ask(request, route: route, model: model, chatID: chatID))
            } else {
                return nil
            }
            guard let title = made else { return nil }
            let stored = try await sql.update(Chat.schema)
                .set("title", to: SQLBind(title))
                .set("needs_title", to: SQLLiteral.boolean(false))
                .where("id", .equal, SQLBind(chatID))
                .where("needs_title", .equal, SQLLiteral.boolean(true))
                .returning("user_id")
                .all()
            guard let owner = stored.first else { return nil }
            lists.changed(try owner.decode(column: "user_id", as: UUID.self))
            bus.chatRenamed(chatID, title: title)
            return title
        } catch {
            logger.warning("could not title a chat", metadata: ["chat": "\(chatID)", "error": "\(String(reflecting: error))"])
            return nil
        }
    }

    /// Asks the model of `route` for a title, in a span of its own.
    private func ask(_ request: ModelRequest, route: ModelCatalog.Route, model: String, chatID: UUID) async throws -> String {
        let trace = ModelCallTrace.start(telemetry, model: model, providerModel: route.model, upstream: .init(route), purpose: .title,
                                         conversation: chatID)
        trace.asked(request)
        do {
            let answer = try await route.provider.text(of: request, onRetry: trace.retrying)
            trace.end(status: "complete", stopReason: answer.completion.stopReason, usage: answer.completion.usage)
            return answer.text
        } catch is CancellationError {
            trace.end(status: "cancelled", stopReason: nil, usage: nil)
            throw CancellationError()
        } catch {
            trace.failed(error)
            trace.end(status: "failed", stopReason: nil, usage: nil)
            throw error
        }
    }
}
