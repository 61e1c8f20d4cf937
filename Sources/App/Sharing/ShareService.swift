import Fluent
import Foundation
import NIOCore
import Vapor

/// Who may open share links (`SHARE_LINKS`).
enum ShareLinks: String, Sendable {
    /// Any signed-in user (the default).
    case users
    /// Anyone with the link.
    case `public`
    /// Nobody: every link is 404, and none can be made.
    case off
}

enum ShareError: HTTPProblemConvertible {
    case disabled
    case notFound
    case tooMany
    case tooLarge

    var problem: HTTPProblem {
        switch self {
        case .disabled:
            HTTPProblem(.forbidden, title: "Sharing is off", detail: "This server does not make share links (SHARE_LINKS=off).",
                        code: "sharing_disabled")
        case .notFound:
            HTTPProblem(.notFound, title: "Not found", detail: "There is no share link with this id, or it was revoked or has expired.")
        case .tooLarge:
            HTTPProblem(.payloadTooLarge, title: "Too large to share",
                        detail: "This conversation is larger than a share link may hold (\(ShareService.maxSnapshotBytes >> 20) MB).",
                        code: "chat_too_large")
        case .tooMany:
            HTTPProblem(.conflict, title: "Too many share links",
                        detail: "You hold \(ShareService.maxPerUser) share links; revoke some first.", code: "too_many_shares")
        }
    }
}

/// Share links: snapshots of a chat's current conversation made by its owner, listed and revoked
/// by them, read by whoever holds the id while `SHARE_LINKS` allows. Nothing is cached: a revoked
/// link is gone from the database, so every instance answers 404 from the next request on.
struct ShareService: Sendable {
    let chats: ChatService
    let files: FileLibrary
    let mode: ShareLinks
    /// `PUBLIC_URL`: links are absolute.
    let publicURL: String
    let clock: any WallClock
    let kind: DatabaseKind

    /// Links a user may hold at once (expired ones do not count), and the most a snapshot may weigh.
    static let maxPerUser = 1000
    static let maxSnapshotBytes = 8 << 20
    /// 18 random bytes: 24 base64url characters, 144 bits.
    static let idBytes = 18

    /// A new id: unguessable, URL-safe.
    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<idBytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    /// Whether `raw` could be an id this server made; anything else is 404 without a query.
    static func isWellFormed(_ raw: String) -> Bool {
        (22...64).contains(raw.utf8.count) && raw.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x2D || byte == 0x5F
        }
    }

    /// Shares `chatID`'s current conversation as it is now (a reply still streaming left out).
    func create(_ chatID: UUID, for userID: UUID, expiresInDays: Int?, on db: any Database) async throws -> ShareResponse {
        guard mode != .off else { throw ShareError.disabled }
        let chat = try await chats.get(chatID, for: userID, on: db)
        let messages = chat.messages.filter { $0.status != .streaming }.map(SharedMessage.init)
        let encoded = try JSONCoding.makeEncoder().encode(messages)
        guard encoded.count <= Self.maxSnapshotBytes else { throw ShareError.tooLarge }
        let now = clock.now()
        let share = ShareLink(id: Self.newID(), chatID: chatID, ownerID: userID, title: chat.summary.title,
                              snapshot: String(decoding: encoded, as: UTF8.self), fileIDs: messages.flatMap { $0.attachments.map(\.id) },
                              createdAt: now, expiresAt: expiresInDays.map { now.addingTimeInterval(Double($0) * 86_400) })
        try await db.transaction { tx in
            try await tx.lockForWriting("shares:" + userID.lowercased, on: kind)
            // Expired links go now; the rest count toward the limit.
            try await ShareLink.query(on: tx).filter(\.$owner.$id == userID).filter(\.$expiresAt <= now).delete()
            guard try await ShareLink.query(on: tx).filter(\.$owner.$id == userID).count() < Self.maxPerUser else { throw ShareError.tooMany }
            try await share.create(on: tx)
        }
        return try ShareResponse(share, publicURL: publicURL)
    }

    /// The caller's links, newest first (expired ones included, marked by their `expires_at`).
    func list(for userID: UUID, on db: any Database) async throws -> [ShareResponse] {
        try await ShareLink.query(on: db).filter(\.$owner.$id == userID).sort(\.$createdAt, .descending).all()
            .map { try ShareResponse($0, publicURL: publicURL) }
    }

    /// Revokes one of the caller's links; 404 for anyone else's.
    func revoke(_ id: String, for userID: UUID, on db: any Database) async throws {
        guard Self.isWellFormed(id),
              let share = try await ShareLink.query(on: db).filter(\.$id == id).filter(\.$owner.$id == userID).first()
        else { throw ShareError.notFound }
        try await share.delete(on: db)
    }

    /// The link `id` while it may be opened: sharing on, not revoked, not expired.
    func open(_ id: String, on db: any Database) async throws -> ShareLink {
        guard mode != .off, Self.isWellFormed(id), let share = try await ShareLink.find(id, on: db) else { throw ShareError.notFound }
        if let expiresAt = share.expiresAt, expiresAt <= clock.now() { throw ShareError.notFound }
        return share
    }

    func conversation(of share: ShareLink) throws -> SharedConversation {
        let messages = try JSONCoding.makeDecoder().decode([SharedMessage].self, from: Data(share.snapshot.utf8))
        return SharedConversation(title: share.title, createdAt: share.createdAt, messages: messages)
    }

    /// `GET /api/shares/<id>/`'s body: the snapshot as stored, not decoded and encoded again.
    func conversationJSON(of share: ShareLink) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: share.snapshot.utf8.count + share.title.utf8.count + 96)
        out.writeStaticString("{\"created_at\":")
        out.writeJSONDate(share.createdAt)
        out.writeStaticString(",\"messages\":")
        out.writeString(share.snapshot)
        out.writeStaticString(",\"title\":")
        out.writeJSONString(share.title)
        out.writeStaticString("}")
        return out
    }

    /// An image of the snapshot `share`: one its messages show, still stored; 404 otherwise.
    func image(_ fileID: UUID, of share: ShareLink, on db: any Database) async throws -> FileRecord {
        let shown = share.fileIDs.split(separator: ",").contains { $0 == fileID.lowercased }
        guard shown, let record = try await files.records([fileID], ownedBy: share.$owner.id, on: db).first, record.isImage else {
            throw ShareError.notFound
        }
        return record
    }
}
