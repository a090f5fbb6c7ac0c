import HummingbirdCore
import Logging
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// How long a connection's sent data may wait unacknowledged before the kernel drops the
/// connection (`TCP_USER_TIMEOUT`).
///
/// An event stream sends little: a ping every 15 s, an event now and then. A browser that
/// vanishes without a word (a laptop closed, a phone off the network) never acknowledges
/// them, and the kernel would keep retransmitting for about a quarter of an hour (15
/// retries) before it gives up; all that time the stream stays registered, holds its
/// buffers and counts against the subscriber cap. With the timeout the connection is
/// dropped once the first unanswered ping or event has waited that long. It also covers a
/// client whose receive window stays shut (it stopped reading): its zero-window probes are
/// answered, but nothing moves for the whole timeout.
public enum SendTimeout {
    /// `VACANCY_SEND_TIMEOUT_SECONDS`: 45 (three pings) by default; 0 leaves the kernel's own.
    public static func read(_ reader: inout ConfigReader) throws -> Duration? {
        let seconds = try reader.int("VACANCY_SEND_TIMEOUT_SECONDS", default: 45, in: 0...3600)
        return seconds == 0 ? nil : .seconds(seconds)
    }

    /// `VACANCY_SEND_UNSENT_BYTES`: how much not yet sent a connection's kernel buffer may hold
    /// (`TCP_NOTSENT_LOWAT`); 32 KiB by default, 0 leaves the kernel's own (its whole send
    /// buffer, megabytes on a fast link). What a slow reader is behind by then waits in the
    /// fan-out, where it is conflated to the newest state, not in the kernel.
    public static func readUnsentLimit(_ reader: inout ConfigReader) throws -> Int? {
        let bytes = try reader.int("VACANCY_SEND_UNSENT_BYTES", default: 32 << 10, in: 0...(64 << 20))
        return bytes == 0 ? nil : bytes
    }

    static let option = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: CInt(TCP_USER_TIMEOUT)))
    /// `TCP_NOTSENT_LOWAT` (25 on Linux).
    static let unsentOption = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: 25))
}

extension HTTPServerBuilder {
    /// `build`'s connections with `timeout` set as their `TCP_USER_TIMEOUT` and `unsentBytes`
    /// as their `TCP_NOTSENT_LOWAT` (nil: unchanged).
    public static func sendTimeout<Child: ServerChildChannel>(
        _ timeout: Duration?, unsentBytes: Int? = nil,
        _ build: @escaping @Sendable (@escaping HTTPChannelHandler.Responder) throws -> Child
    ) -> HTTPServerBuilder {
        .init { responder in
            let child = try build(responder)
            guard timeout != nil || unsentBytes != nil else { return child }
            return SendTimeoutChannel(base: child, milliseconds: timeout.map { Int($0.milliseconds) }, unsentBytes: unsentBytes)
        }
    }
}

/// A server child channel that sets `TCP_USER_TIMEOUT` and `TCP_NOTSENT_LOWAT` on each
/// connection before `base` sets it up.
struct SendTimeoutChannel<Base: ServerChildChannel>: ServerChildChannel {
    let base: Base
    let milliseconds: Int?
    let unsentBytes: Int?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Base.Value> {
        for (option, value, name) in [
            (SendTimeout.option, milliseconds, "TCP_USER_TIMEOUT"), (SendTimeout.unsentOption, unsentBytes, "TCP_NOTSENT_LOWAT"),
        ] {
            guard let value else { continue }
            do {
                try channel.syncOptions?.setOption(option, value: SocketOptionValue(value))
            } catch {
                logger.debug("\(name) not set", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Base.Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
