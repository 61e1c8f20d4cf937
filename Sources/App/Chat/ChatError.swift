import Vapor

/// What can go wrong with chats and their replies.
enum ChatError: HTTPProblemConvertible, Equatable {
    /// Absent, or someone else's: the two are never told apart.
    case chatNotFound
    case replyInProgress
    case noReplyInProgress
    case shuttingDown
    case invalidLastEventID(String)
    case tooManyStreams(Int)
    /// The chat holds the most messages a chat may.
    case chatFull(Int)
    /// Regenerate: the conversation has no finished reply at its end.
    case nothingToRegenerate
    /// Edit: the message is not a question of the current conversation.
    case notEditable
    /// No such message in this chat.
    case messageNotFound
    /// The `message_id` of a request body names no message of this chat.
    case unknownMessageID

    var problem: HTTPProblem {
        switch self {
        case .chatNotFound:
            return HTTPProblem(.notFound, title: "Chat not found", detail: "There is no chat with this id among yours.")
        case .replyInProgress:
            return HTTPProblem(.conflict, title: "Reply in progress",
                               detail: "The assistant is still replying in this chat; wait for it to finish or stop it.")
        case .noReplyInProgress:
            return HTTPProblem(.conflict, title: "No reply in progress", detail: "Nothing is streaming in this chat.")
        case .shuttingDown:
            return HTTPProblem(.serviceUnavailable, title: "Shutting down",
                               detail: "This server is stopping; try again in a moment.", headers: ["Retry-After": "5"])
        case .tooManyStreams(let limit):
            return HTTPProblem(.tooManyRequests, title: "Too many open streams",
                               detail: "You have \(limit) event streams open already; close one first.", headers: ["Retry-After": "5"])
        case .chatFull(let limit):
            return HTTPProblem(.conflict, title: "Chat is full",
                               detail: "This chat holds \(limit) messages, the most a chat may; start a new chat to go on.")
        case .nothingToRegenerate:
            return HTTPProblem(.badRequest, title: "Nothing to regenerate", detail: "This chat's conversation does not end with a reply.")
        case .notEditable:
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "message_id: only a question of the current conversation can be edited.",
                               fieldErrors: ["message_id": ["Only a question (role user) of the current conversation can be edited."]])
        case .messageNotFound:
            return HTTPProblem(.notFound, title: "Message not found", detail: "There is no message with this id in this chat.")
        case .unknownMessageID:
            // The chat (the resource in the path) exists; the body names a message it does not hold.
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "message_id: there is no message with this id in this chat.",
                               fieldErrors: ["message_id": ["There is no message with this id in this chat."]])
        case .invalidLastEventID(let value):
            return HTTPProblem(.badRequest, title: "Invalid input", detail: "Last-Event-ID '\(value)' is not an event id of this stream.",
                               fieldErrors: ["last_event_id": ["Not an event id of this stream."]])
        }
    }
}
