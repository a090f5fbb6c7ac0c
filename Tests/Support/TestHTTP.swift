import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// An HTTP response as tests look at it.
public struct TestResponse: Sendable {
    public let status: Int
    public let headers: HTTPHeaders
    public let body: Data

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object (empty if it is not one).
    public var json: [String: any Sendable] {
        ((try? JSONSerialization.jsonObject(with: body)) as? [String: any Sendable]) ?? [:]
    }

    public func string(_ key: String) -> String? { json[key] as? String }
    public func int(_ key: String) -> Int? { json[key] as? Int }
    public var contentType: String { headers.first(name: "content-type") ?? "" }
}

/// A real HTTP client with room for hundreds of concurrent requests.
public enum TestHTTP {
    public static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(1), concurrentHTTP1ConnectionsPerHostSoftLimit: 400)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(60))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public static func send(
        _ method: HTTPMethod,
        _ url: String,
        headers: [(String, String)] = [],
        body: String? = nil,
        timeout: TimeAmount = .seconds(60)
    ) async throws -> TestResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        // No connection outlives its request: tests start and stop servers all the time, and a
        // pooled connection to a port that a new server has since taken stalls the next request.
        request.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            if !headers.contains(where: { $0.0.lowercased() == "content-type" }) {
                request.headers.add(name: "Content-Type", value: "application/json")
            }
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await client.execute(request, timeout: timeout)
        let buffer = try await response.body.collect(upTo: 16 * 1024 * 1024)
        return TestResponse(status: Int(response.status.code), headers: response.headers, body: Data(buffer.readableBytesView))
    }
}
