/// Why a subscriber's stream was ended by the fan-out (a slow consumer is cut off instead,
/// see `vacancy_fanout_slow_consumer_disconnects_total`).
public enum StreamEnd: String, Sendable {
    case tokenExpired = "token_expired"
    case shutdown
    /// The database failed over to a primary that lacks events this stream was sent.
    case historyChanged = "history_changed"
}
