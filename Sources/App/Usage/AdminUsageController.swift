import Fluent
import Foundation
import Vapor

/// `/admin/usage/`: tokens spent per day, per user and per model over the last days (7, 30 or 90),
/// for everyone or one user, with costs where the models' prices are known. The daily totals are
/// drawn as a bar chart in plain SVG (no script: the admin's policy allows none).
struct AdminUsageController: RouteCollection {
    let ledger: UsageLedger

    func boot(routes: any RoutesBuilder) throws {
        routes.get("usage", use: page)
    }

    struct Totals: Encodable {
        var input = 0
        var output = 0
        var cacheRead = 0
        var cacheWrite = 0
        var total = 0
        var replies = 0
        var cost: String?

        mutating func add(_ entry: UsageLedger.Entry) {
            input += entry.tokens.input
            output += entry.tokens.output
            cacheRead += entry.tokens.cacheRead
            cacheWrite += entry.tokens.cacheWrite
            total += entry.tokens.total
            replies += entry.replies
        }
    }

    struct Day: Encodable {
        let day: String
        let totals: Totals
        /// The bar's length, in percent of the busiest day.
        let bar: Int
    }

    struct Named: Encodable {
        let id: String
        let name: String
        let totals: Totals
        /// A user's row links to the account; the deleted accounts' has none.
        var isAccount = true
    }

    struct Page: Encodable {
        let days: [Day]
        let users: [Named]
        let models: [Named]
        let total: Totals
        let periods: [AdminOption]
        let user: String?
        let userEmail: String?
        /// Not one user's page.
        let everyone: Bool
        let firstDay: String
        let lastDay: String
        let pricesKnown: Bool
    }

    /// Where the usage of accounts deleted since is counted, in the table by user.
    static let deletedAccounts = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))

    func page(req: Request) async throws -> Response {
        let period = Int(req.adminQuery("days") ?? "") .flatMap { [7, 30, 90].contains($0) ? $0 : nil } ?? 30
        let userID = req.adminQuery("user").flatMap { UUID(hyphenated: $0) }
        let now = ledger.clock.now()
        let lastDay = UsageLedger.day(of: now)
        let firstDay = UsageLedger.day(of: now.addingTimeInterval(-Double(period - 1) * 86_400))
        let entries = try await ledger.entries(from: firstDay, to: lastDay, of: userID, on: req.db)

        var byDay: [String: Totals] = [:]
        var byUser: [UUID: Totals] = [:]
        var byModel: [String: Totals] = [:]
        var total = Totals()
        var costs: (day: [String: Double], user: [UUID: Double], model: [String: Double], all: Double) = ([:], [:], [:], 0)
        var allPriced = true
        for entry in entries {
            byDay[entry.day, default: Totals()].add(entry)
            byUser[entry.userID ?? Self.deletedAccounts, default: Totals()].add(entry)
            byModel[entry.model, default: Totals()].add(entry)
            total.add(entry)
            guard let price = ledger.settings.prices[entry.model] else {
                allPriced = false
                continue
            }
            let cost = price.cost(of: entry.tokens)
            costs.day[entry.day, default: 0] += cost
            costs.user[entry.userID ?? Self.deletedAccounts, default: 0] += cost
            costs.model[entry.model, default: 0] += cost
            costs.all += cost
        }
        let pricesKnown = !ledger.settings.prices.isEmpty
        func dollars(_ value: Double?) -> String? { pricesKnown ? value.map { String(format: "$%.4f", $0) } : nil }

        // Every day of the period, the quiet ones too.
        var days: [Day] = []
        let busiest = max(1, byDay.values.map(\.total).max() ?? 1)
        for offset in 0..<period {
            let day = UsageLedger.day(of: now.addingTimeInterval(-Double(period - 1 - offset) * 86_400))
            var totals = byDay[day] ?? Totals()
            totals.cost = dollars(costs.day[day] ?? 0)
            days.append(Day(day: day, totals: totals, bar: Int((Double(totals.total) / Double(busiest) * 100).rounded())))
        }
        let emails = try await User.query(on: req.db).filter(\.$id ~~ Array(byUser.keys)).all()
            .reduce(into: [UUID: String]()) { if let id = $1.id { $0[id] = $1.email } }
        let users = byUser.sorted { $0.value.total > $1.value.total }.prefix(100).map { id, totals in
            var totals = totals
            totals.cost = dollars(costs.user[id])
            let deleted = id == Self.deletedAccounts
            return Named(id: id.uuidString, name: deleted ? "(deleted accounts)" : emails[id] ?? id.uuidString, totals: totals, isAccount: !deleted)
        }
        let models = byModel.sorted { $0.value.total > $1.value.total }.map { model, totals in
            var totals = totals
            totals.cost = dollars(ledger.settings.prices[model] == nil ? nil : costs.model[model])
            return Named(id: model, name: model, totals: totals)
        }
        total.cost = allPriced ? dollars(costs.all) : nil
        let content = Page(
            days: days, users: users, models: models, total: total,
            periods: AdminOption.list([("7", "7 days"), ("30", "30 days"), ("90", "90 days")], selected: String(period)),
            user: userID?.uuidString, userEmail: userID.flatMap { emails[$0] }, everyone: userID == nil, firstDay: firstDay, lastDay: lastDay, pricesKnown: pricesKnown
        )
        return try await req.adminPage("usage", title: "Usage", section: "usage", content)
    }
}
