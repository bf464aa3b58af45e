import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import Xs3leratorService

/// The server connection's deadlines as a state machine on an `EmbeddedChannel`.
@Suite("connection deadlines")
struct ConnectionDeadlineTests {
    private func channel() throws -> (EmbeddedChannel, EmbeddedEventLoop) {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.pipeline.syncOperations.addHandler(ConnectionDeadlines(headTimeout: .seconds(5), writeStallTimeout: .seconds(3)))
        return (channel, loop)
    }

    private let head = HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x"))

    @Test func stateChoosesTheDeadline() {
        var state = ConnectionDeadlines.State()
        #expect(state.deadline == .head)
        state.headReceived()
        #expect(state.deadline == .none)
        state.writabilityChanged(false)
        #expect(state.deadline == .writeStall)
        state.responseEnded()
        #expect(state.deadline == .writeStall, "a stalled write wins over waiting for the next head")
        state.writabilityChanged(true)
        #expect(state.deadline == .head)
    }

    @Test func aConnectionWithoutAHeadClosesAtTheDeadline() throws {
        let (channel, loop) = try channel()
        loop.advanceTime(by: .milliseconds(4900))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
    }

    @Test func aRequestInProgressHasNoDeadlineAndTheNextHeadGetsAFreshOne() throws {
        let (channel, loop) = try channel()
        loop.advanceTime(by: .seconds(4))
        try channel.writeInbound(head)
        loop.advanceTime(by: .seconds(60))
        #expect(channel.isActive, "a long response is not cut by the head deadline")
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        loop.advanceTime(by: .milliseconds(4900))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(200))
        #expect(!channel.isActive)
    }

    @Test func anUnwritableConnectionClosesAfterTheStallTimeoutUnlessItDrains() throws {
        let (channel, loop) = try channel()
        try channel.writeInbound(head)
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        loop.advanceTime(by: .seconds(2))
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        loop.advanceTime(by: .seconds(2))
        #expect(channel.isActive, "progress restarted the clock")
        loop.advanceTime(by: .milliseconds(1100))
        #expect(!channel.isActive)
    }
}
