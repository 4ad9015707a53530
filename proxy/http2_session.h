#pragma once
// HTTP/2 on a client connection: libnghttp2's session, fed the bytes the
// connection reads and asked for the bytes it writes (mem_recv/mem_send), so
// the connection keeps its socket, TLS, buffers and edge-triggered loop. Each
// stream is an exchange on the request pipeline, through its own
// ExchangeClient; servers are still spoken to over pooled HTTP/1.1.
// Flow control is the back-pressure: a stream's receive window is given back
// only as its body goes on to the server, and a response body is taken from
// the server only while less than a window's worth waits for the client.
// Worker-thread only.

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "observe/metrics.h"
#include "proxy/exchange_client.h"
#include "proxy/runtime.h"

namespace crest::io {
class BlockPool;
}

namespace crest::proxy {

class WorkerContext;
class Http2Stream;

// What a session needs from the connection that carries it.
class Http2Carrier {
 public:
  virtual ~Http2Carrier() = default;
  // Runs the connection (reading, the session, writing); see ExchangeClient::wake.
  virtual void wakeConnection() = 0;
  virtual const ClientInfo& clientInfo() const = 0;
  virtual const Runtime& runtime() const = 0;
  virtual const ListenerRuntime* listenerRuntime() const = 0;
};

class Http2Session {
 public:
  // The connection preface a client speaking HTTP/2 with prior knowledge opens with.
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

  Http2Session(WorkerContext& worker, Http2Carrier& carrier, const conf::Http2Config& config);
  // Ends every stream still open (their exchanges are recorded as the client's closing).
  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Takes what `in` holds, moves the streams along, and adds what is to be
  // sent to `out` while less than `out_room` waits there. True when anything moved.
  bool pump(evbuffer* in, evbuffer* out, size_t out_room);
  // The session failed (a protocol error it could not answer) or has said
  // and done all it will: the connection closes once `out` is sent.
  bool finished() const;
  // Graceful stop: GOAWAY with the last stream id; the streams in flight finish.
  void shutdown();
  // Streams that wait for their servers: the servers' timeouts govern them,
  // not the client's inactivity. A stream whose response waits for the
  // client's window is the client's to move.
  bool waitingOnServers() const;
  bool hasStreams() const { return !streams_.empty(); }

 private:
  friend class Http2Stream;
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* arg);
  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* arg);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* arg);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                         size_t len, void* arg);
  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* arg);
  static int onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* arg);
  static int onSendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* header,
                        size_t length, nghttp2_data_source* source, void* arg);
  // Streams live in the worker's block pool, as nghttp2's own memory does.
  struct StreamDeleter {
    io::BlockPool* pool;
    void operator()(Http2Stream* stream) const;
  };
  using StreamPtr = std::unique_ptr<Http2Stream, StreamDeleter>;
  using StreamList = std::vector<std::pair<int32_t, StreamPtr>>;

  Http2Stream* stream(int32_t id);
  // Where stream `id` is, or would go.
  StreamList::iterator slot(int32_t id);
  // Stream `id` has something to do (body to move, a server's bytes, room in
  // its output): the next pump() runs it. Only those run: an event on one
  // stream's server costs nothing for the others.
  void schedule(int32_t id) { ready_.push_back(id); }

  // Ends the session with a GOAWAY: abuse (`calm`) or a protocol error.
  // What the client sends from then on is dropped.
  void terminate(bool calm);

  WorkerContext& worker_;
  Http2Carrier& carrier_;
  nghttp2_session* session_ = nullptr;
  const uint32_t max_streams_;    // advertised; streams past it are refused
  bool settings_pending_ = true;  // the first SETTINGS frame is not sent yet
  // Where a response head is assembled before nghttp2 copies it, for every
  // stream of the session: once warm, a response head allocates nothing.
  struct HeadScratch {
    std::vector<std::pair<std::string_view, std::string_view>> fields;
    std::vector<nghttp2_nv> nva;
  } head_;
  evbuffer* sending_ = nullptr;  // pump()'s `out` while it asks nghttp2 for frames
  size_t sending_room_ = 0;      // and its `out_room`
  bool failed_ = false;          // nothing more can be sent: close now
  bool terminated_ = false;      // a GOAWAY for an error is on its way: read no more
  bool calm_ = false;            // a callback found abuse
  // Frames that cost crest work without moving a request (PRIORITY,
  // non-final empty DATA, SETTINGS, PING), against a budget that grows with
  // the streams opened: a flood of them ends the connection.
  uint64_t idle_frames_ = 0;
  uint64_t streams_opened_ = 0;
  // By id: a client opens its streams in increasing order (RFC 9113
  // 5.1.1), so a new one goes at the end. A handful, found by bisection.
  StreamList streams_;
  std::vector<int32_t> ready_;    // streams to run (schedule), maybe twice, maybe closed since
  std::vector<int32_t> running_;  // ready_ as it was when this pump() began
};

}  // namespace crest::proxy
