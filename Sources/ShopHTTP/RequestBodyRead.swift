public import HummingbirdCore
public import NIOCore

extension Request {
    /// `collectBody(upTo:)` (the body gathered, `NIOTooManyBytesError` past `maxSize`, the body
    /// left readable again), read through the body's iterator directly: a body that
    /// ``WholeRequestChannel`` read whole is one buffer, which `collectBody`'s generic
    /// `AsyncSequence.collect` reached through a dozen async frames (~2,000 instructions a
    /// purchase; issue 31).
    public mutating func readBody(upTo maxSize: Int) async throws -> ByteBuffer {
        var parts = body.makeAsyncIterator()
        var gathered = ByteBuffer()
        while var part = try await parts.next() {
            guard part.readableBytes <= maxSize - gathered.readableBytes else {
                throw NIOTooManyBytesError(maxBytes: maxSize)
            }
            if gathered.readableBytes == 0 {
                gathered = part
            } else {
                gathered.writeBuffer(&part)
            }
        }
        body = .init(buffer: gathered)
        return gathered
    }
}
