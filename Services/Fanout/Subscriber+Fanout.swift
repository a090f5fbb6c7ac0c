import FanoutCore
import Shared

/// One piece of a stream: an event from the log (with its id, commit time and conflation
/// key) or a comment.
typealias Frame = StreamFrame

extension StreamFrame {
    static func comment(_ text: String) -> StreamFrame {
        StreamFrame(id: nil, bytes: ServerSentEvent.comment(text))
    }
}
