import Foundation
import Hummingbird
import NIOCore

/// Runs an application on an ephemeral port for the length of `body`, then shuts it down.
/// `makeApp` receives the `onServerRunning` callback to wire into the application.
public func withRunningApp<App: ApplicationProtocol, T: Sendable>(
    _ makeApp: (@escaping @Sendable (any Channel) async -> Void) -> App,
    _ body: @Sendable (_ baseURL: String) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = makeApp { channel in
        continuation.yield(channel.localAddress?.port ?? 0)
        continuation.finish()
    }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await app.run()
            continuation.finish()
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            // The app stopped before it listened: surface its error.
            while (try await group.next()) != nil {}
            throw AppDidNotStart()
        }
        let result = try await body("http://127.0.0.1:\(port)")
        group.cancelAll()
        while (try? await group.next()) != nil {}
        return result
    }
}

public struct AppDidNotStart: Error {}
