import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Shared

/// The bookings service assembled: routes, API keys, the hold expirer and the change notifier.
enum BookingsApp {
    static func make(
        configuration: BookingsConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let host = ServiceHost(configuration: configuration.common, logger: logger)
        let database = host.database
        let ledger = SeatLedger()
        let idempotency = IdempotencyStore(ttlHours: configuration.idempotencyTTLHours)
        let notifier = ChangeNotifier(database: database, enabled: configuration.notifyChanges, metrics: host.metrics, logger: logger)
        let expirer = HoldExpirer(
            database: database, ledger: ledger, idempotency: idempotency, notifier: notifier,
            interval: configuration.sweepInterval, metrics: host.metrics, logger: logger
        )

        let transaction = IdempotentTransaction(database: database, idempotency: idempotency, notifier: notifier)
        let router = host.makeRouter()
        router.addOpenAPIRoute(.bookings)
        let api = router.group("api/v1").add(middleware: APIKeyMiddleware(keys: configuration.apiKeys))
        SessionRoutes(
            store: SessionStore(database: database), notifier: notifier, maxBodyBytes: configuration.maxBodyBytes,
            timeZone: configuration.timeZone
        )
        .register(on: api)
        BookingRoutes(
            database: database, ledger: ledger,
            desk: BookingDesk(database: database, ledger: ledger, idempotency: idempotency),
            notifier: notifier, holds: configuration.holdSeconds, maxBodyBytes: configuration.maxBodyBytes, transaction: transaction
        ).register(on: api)
        WaitlistRoutes(
            database: database, line: WaitingLine(ledger: ledger),
            transaction: transaction,
            offers: configuration.offers, maxBodyBytes: configuration.maxBodyBytes
        ).register(on: api)
        TokenRoutes(signer: TokenSigner(secret: configuration.tokenSecret), maxBodyBytes: configuration.maxBodyBytes).register(on: api)

        return host.makeApplication(router: router, services: [notifier, expirer], onServerRunning: onServerRunning)
    }
}
