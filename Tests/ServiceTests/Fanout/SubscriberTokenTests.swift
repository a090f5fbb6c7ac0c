import Foundation
import Hummingbird
import JWTKit
import Shared
import Synchronization
import TestSupport
import Testing

@testable import Fanout

/// Subscriber tokens from an identity provider: ES256 and EdDSA keys published as a JWKS,
/// picked by `kid`, fetched again when a token names a key the fan-out does not hold yet.
@Suite(.timeLimit(.minutes(2))) struct SubscriberTokenTests {
    /// A signing key of the test's identity provider and its public JWK.
    struct ProviderKey: Sendable {
        let kid: String
        let keys: JWTKeyCollection
        let jwk: String

        static func es256(_ kid: String, alg: Bool = true) async throws -> ProviderKey {
            let key = ES256PrivateKey()
            let (x, y) = try #require(key.publicKey.parameters)
            let keys = await JWTKeyCollection().add(ecdsa: key, kid: JWKIdentifier(string: kid))
            let algorithm = alg ? #","alg":"ES256""# : ""
            return ProviderKey(
                kid: kid, keys: keys, jwk: #"{"kty":"EC","crv":"P-256","use":"sig","kid":"\#(kid)","x":"\#(x)","y":"\#(y)"\#(algorithm)}"#)
        }

        static func eddsa(_ kid: String) async throws -> ProviderKey {
            let key = try EdDSA.PrivateKey()
            let x = key.publicKey.rawRepresentation.base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            let keys = await JWTKeyCollection().add(eddsa: key, kid: JWKIdentifier(string: kid))
            return ProviderKey(kid: kid, keys: keys, jwk: #"{"kty":"OKP","crv":"Ed25519","kid":"\#(kid)","x":"\#(x)"}"#)
        }

        func token(_ topics: [String], expires: TimeInterval = 600, kid: String? = nil) async throws -> String {
            try await keys.sign(
                SubscriberToken(sub: "ada", topics: topics, expires: Date().addingTimeInterval(expires)),
                kid: JWKIdentifier(string: kid ?? self.kid))
        }
    }

    /// Serves whatever JWKS `document` holds at `/jwks.json`, counting fetches.
    final class JWKSServer: Sendable {
        let document = Mutex("")
        let fetches = Atomic(0)

        func publish(_ keys: [ProviderKey]) {
            document.withLock { $0 = #"{"keys":[\#(keys.map(\.jwk).joined(separator: ","))]}"# }
        }

        func run<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
            try await withRunningApp({ onRunning in
                let router = Router()
                router.get("jwks.json") { _, _ in
                    self.fetches.add(1, ordering: .relaxed)
                    return Response(
                        status: .ok, headers: [.contentType: "application/jwk-set+json"],
                        body: .init(byteBuffer: ByteBuffer(string: self.document.withLock { $0 })))
                }
                return Application(
                    router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: onRunning)
            }) { baseURL in try await body(baseURL + "/jwks.json") }
        }
    }

    @Test func identityProviderTokensAreVerifiedByKidAndKeysRotate() async throws {
        let first = try await ProviderKey.es256("key-2026-a")
        let edwards = try await ProviderKey.eddsa("key-ed")
        let next = try await ProviderKey.es256("key-2026-b", alg: false)
        let server = JWKSServer()
        server.publish([first, edwards])
        try await server.run { jwksURL in
            try await TestDatabase.with { db in
                try await withFanout(
                    on: db,
                    configure: {
                        $0.tokenJWKSURL = jwksURL
                        $0.tokenJWKSRefresh = .seconds(600)
                    }
                ) { fanout in
                    let url = fanout.events(["user.ada"])
                    @Sendable func status(_ token: String) async throws -> Int {
                        let stream = try await EventStreamClient.open(url, headers: [("Authorization", "Bearer \(token)")])
                        stream.close()
                        return stream.status
                    }
                    let es256 = try await first.token(["user.ada"])
                    await expectEventually(within: 5, "the JWKS is fetched at start-up") { (try? await status(es256)) == 200 }
                    let fromEdwards = try await EventStreamClient.open(
                        url, headers: [("Authorization", "Bearer \(try await edwards.token(["user.ada"]))")])
                    #expect(fromEdwards.status == 200, "an EdDSA key without alg is taken for EdDSA by its curve")
                    let ids = try await db.appendEvents(1, topics: ["user.ada"], type: "booking.updated")
                    #expect(await fromEdwards.next(within: 3)?.id == String(ids[0]))
                    fromEdwards.close()

                    let hs256 = try await TokenSigner(secret: TokenSigner.developmentSecret).sign(
                        SubscriberToken(sub: "ada", topics: ["user.ada"], expires: Date().addingTimeInterval(600)))
                    #expect(try await status(hs256) == 200, "HS256 with the shared secret still works beside the JWKS")
                    #expect(try await status(try await next.token(["user.ada"], kid: first.kid)) == 401, "signed by another key")
                    #expect(
                        try await status(try await first.token(["user.ada"], kid: edwards.kid)) == 401, "ES256 under an EdDSA key's kid")
                    #expect(try await status(try await first.token(["user.ada"], expires: -5)) == 401, "expired")
                    let other = try await EventStreamClient.open(
                        fanout.events(["user.bob"]), headers: [("Authorization", "Bearer \(es256)")])
                    #expect(other.status == 403, "a valid token covers only the topics it names")

                    // The provider rotates: the new key is published, the old one withdrawn. A token
                    // under the new kid makes the fan-out fetch again at once, long before its 10-minute refresh.
                    let fetchesBefore = server.fetches.load(ordering: .relaxed)
                    server.publish([next, edwards])
                    let rotated = try await next.token(["user.ada"])
                    await expectEventually(within: 5, "a token under the new kid is accepted") { (try? await status(rotated)) == 200 }
                    #expect(server.fetches.load(ordering: .relaxed) > fetchesBefore)
                    #expect(try await status(es256) == 401, "the withdrawn key's tokens are refused")
                    let refusal = try await EventStreamClient.open(url, headers: [("Authorization", "Bearer \(es256)")])
                    #expect((refusal.refusalJSON["detail"] as? String)?.contains("kid") == true, "\(refusal.refusalJSON)")
                }
            }
        }
    }

    @Test func aJWKSKeepsOnlyES256AndEdDSAKeysWithAKid() async throws {
        let verifier = SubscriberTokenVerifier(secret: "s")
        let good = try await ProviderKey.es256("good")
        let noKid = try await ProviderKey.eddsa("x")
        let jwks = #"""
            {"keys":[\#(good.jwk),
              \#(noKid.jwk.replacingOccurrences(of: #""kid":"x","#, with: "")),
              {"kty":"RSA","kid":"rsa","alg":"RS256","n":"sXch","e":"AQAB"},
              {"kty":"EC","crv":"P-384","kid":"p384","x":"AA","y":"AA"}]}
            """#
        let (installed, skipped) = try await verifier.install(jwks: Data(jwks.utf8))
        #expect(installed == ["good"])
        #expect(Set(skipped) == ["(no kid)", "rsa", "p384"])
        #expect(try verifier.verify(try await good.token(["admin"])).topics == ["admin"])
        #expect(throws: SubscriberTokenVerifier.Failure.unsupportedAlgorithm) {
            let header = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
            let claims = Data(#"{"sub":"a","topics":["admin"],"exp":9999999999,"iat":0}"#.utf8).base64EncodedString()
                .replacingOccurrences(of: "=", with: "")
            _ = try verifier.verify("\(header).\(claims).")
        }
        #expect(throws: SubscriberTokenVerifier.Failure.malformed) { _ = try verifier.verify("not.a.jwt") }
    }

    @Test func aJWKSURLThatIsNotHTTPStopsStartUp() throws {
        #expect(throws: ConfigReader.InvalidValue.self) {
            var reader = ConfigReader(environment: ["VACANCY_TOKEN_JWKS_URL": "ftp://idp.example/jwks"])
            _ = try FanoutConfiguration(reader: &reader)
        }
        var reader = ConfigReader(environment: ["VACANCY_TOKEN_JWKS_URL": "https://idp.example/.well-known/jwks.json"])
        #expect(try FanoutConfiguration(reader: &reader).tokenJWKSURL == "https://idp.example/.well-known/jwks.json")
    }
}
