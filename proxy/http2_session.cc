#include "proxy/http2_session.h"

#include <algorithm>
#include <new>

#include "io/block_pool.h"
#include "proxy/exchange.h"
#include "proxy/http2_stream.h"
#include "proxy/worker_context.h"

namespace crest::proxy {

namespace {

// The connection's receive window: what all its streams' request bodies may
// hold in crest at once, beyond the stream windows' own bound.
constexpr int32_t kConnectionWindow = 1 << 20;

// Frames that move no request a connection may send before the streams it
// opened pay for them (four a stream): browsers send a few at the start.
constexpr uint64_t kIdleFrameAllowance = 1000;

// Streams a client may open past the advertised max_concurrent_streams and
// be refused one by one (RST_STREAM REFUSED_STREAM); past these, nghttp2
// ends the connection (PROTOCOL_ERROR).
constexpr uint32_t kRefusableStreams = 100;

// Rewrites SETTINGS_MAX_CONCURRENT_STREAMS in the SETTINGS frame at the
// start of `frames` to `value`; false when it is not there.
bool advertiseMaxStreams(std::string& frames, uint32_t value) {
  if (frames.size() < 9 || frames[3] != NGHTTP2_SETTINGS) return false;
  size_t length = (static_cast<size_t>(static_cast<uint8_t>(frames[0])) << 16) |
                  (static_cast<size_t>(static_cast<uint8_t>(frames[1])) << 8) |
                  static_cast<uint8_t>(frames[2]);
  for (size_t at = 9; at + 6 <= 9 + length && at + 6 <= frames.size(); at += 6) {
    if (frames[at] == 0 && frames[at + 1] == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) {
      for (int i = 0; i < 4; ++i) frames[at + 2 + i] = static_cast<char>(value >> (24 - 8 * i));
      return true;
    }
  }
  return false;
}

// nghttp2 allocates a stream, its frames and their fields anew for every
// request: from the worker's block pool, not malloc.
nghttp2_mem blockPoolMemory(io::BlockPool& pool) {
  nghttp2_mem mem{};
  mem.mem_user_data = &pool;
  mem.malloc = [](size_t size, void* p) { return static_cast<io::BlockPool*>(p)->allocate(size); };
  mem.free = [](void* block, void* p) { static_cast<io::BlockPool*>(p)->release(block); };
  mem.calloc = [](size_t n, size_t size, void* p) {
    return static_cast<io::BlockPool*>(p)->allocateZeroed(n, size);
  };
  mem.realloc = [](void* block, size_t size, void* p) {
    return static_cast<io::BlockPool*>(p)->resize(block, size);
  };
  return mem;
}

struct Callbacks {
  Callbacks() { nghttp2_session_callbacks_new(&callbacks); }
  ~Callbacks() { nghttp2_session_callbacks_del(callbacks); }
  nghttp2_session_callbacks* callbacks = nullptr;
};

}  // namespace

Http2Session::Http2Session(WorkerContext& worker, Http2Carrier& carrier,
                           const conf::Http2Config& config)
    : worker_(worker), carrier_(carrier), max_streams_(config.max_concurrent_streams) {
  Callbacks c;
  nghttp2_session_callbacks_set_on_begin_headers_callback(c.callbacks, &onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(c.callbacks, &onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(c.callbacks, &onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c.callbacks, &onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(c.callbacks, &onStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(c.callbacks, &onFrameSend);
  nghttp2_session_callbacks_set_send_data_callback(c.callbacks, &onSendData);
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Windows are given back as bodies go on to the servers (Http2Stream::pump).
  nghttp2_option_set_no_auto_window_update(option, 1);
  // nghttp2 keeps a copy of the functions; the pool outlives the session.
  nghttp2_mem mem = blockPoolMemory(worker_.http2Blocks());
  nghttp2_session_server_new3(&session_, c.callbacks, this, option, &mem);
  nghttp2_option_del(option);
  const auto& limits = carrier.runtime().config().limits;
  // nghttp2 ends the connection for a stream past the limit it knows (once
  // the client acknowledged it); RFC 9113 5.1.2 also allows refusing the
  // stream, which SPEC asks for. So nghttp2 is given a higher limit, the
  // client is told the configured one (the first SETTINGS frame is
  // rewritten on its way out), and onBeginHeaders refuses the streams
  // between the two.
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams_ + kRefusableStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(config.initial_window)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(limits.max_header_bytes)},
      // Extended CONNECT (RFC 8441): WebSocket over a stream.
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(
      session_, NGHTTP2_FLAG_NONE, 0,
      std::max<int32_t>(kConnectionWindow, static_cast<int32_t>(config.initial_window)));
}

Http2Session::~Http2Session() {
  for (auto& [id, stream] : streams_) stream->onClosed();
  streams_.clear();
  nghttp2_session_del(session_);
}

bool Http2Session::pump(evbuffer* in, evbuffer* out, size_t out_room) {
  bool progress = false;
  while (!failed_ && evbuffer_get_length(in) > 0) {
    if (terminated_) {
      evbuffer_drain(in, evbuffer_get_length(in));
      break;
    }
    evbuffer_iovec chunk;
    evbuffer_peek(in, -1, nullptr, &chunk, 1);
    ssize_t used = nghttp2_session_mem_recv(session_, static_cast<const uint8_t*>(chunk.iov_base),
                                            chunk.iov_len);
    if (used < 0) {
      // Floods nghttp2 counts itself (SETTINGS and PING whose answers the
      // client does not read, CONTINUATION) or a callback's, else a protocol error.
      terminate(calm_ || used == NGHTTP2_ERR_FLOODED || used == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS);
      progress = true;
      continue;
    }
    evbuffer_drain(in, static_cast<size_t>(used));
    progress = true;
  }
  // Until no stream has more to do: running one may schedule it again (its
  // response ended, its output has room).
  bool moved = true;
  while (moved && !ready_.empty()) {
    moved = false;
    running_.swap(ready_);
    for (int32_t id : running_) {
      if (Http2Stream* s = stream(id)) moved |= s->pump();
    }
    running_.clear();
    progress |= moved;
  }
  sending_ = out;
  sending_room_ = out_room;
  size_t before = evbuffer_get_length(out);
  while (!failed_ && evbuffer_get_length(out) < out_room) {
    const uint8_t* data = nullptr;
    // DATA frames go to `out` through onSendData as this runs.
    ssize_t length = nghttp2_session_mem_send(session_, &data);
    if (length < 0) {
      failed_ = true;
      break;
    }
    if (length == 0) break;
    if (settings_pending_) {
      settings_pending_ = false;
      std::string frames(reinterpret_cast<const char*>(data), static_cast<size_t>(length));
      if (advertiseMaxStreams(frames, max_streams_)) {
        evbuffer_add(out, frames.data(), frames.size());
        progress = true;
        continue;
      }
    }
    evbuffer_add(out, data, static_cast<size_t>(length));
    progress = true;
  }
  sending_ = nullptr;
  return progress || evbuffer_get_length(out) != before;
}

bool Http2Session::finished() const {
  return failed_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_));
}

void Http2Session::terminate(bool calm) {
  terminated_ = true;
  if (nghttp2_session_terminate_session(
          session_, calm ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR) != 0) {
    failed_ = true;
  }
}

void Http2Session::shutdown() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

bool Http2Session::waitingOnServers() const {
  if (streams_.empty()) return false;
  for (const auto& [id, stream] : streams_) {
    if (stream->unsentBytes() > 0) return false;
  }
  return true;
}

void Http2Session::StreamDeleter::operator()(Http2Stream* stream) const {
  stream->~Http2Stream();
  pool->release(stream);
}

Http2Session::StreamList::iterator Http2Session::slot(int32_t id) {
  return std::lower_bound(streams_.begin(), streams_.end(), id,
                          [](const auto& entry, int32_t key) { return entry.first < key; });
}

Http2Stream* Http2Session::stream(int32_t id) {
  auto at = slot(id);
  return at != streams_.end() && at->first == id ? at->second.get() : nullptr;
}

int Http2Session::onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
  auto* self = static_cast<Http2Session*>(arg);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  int32_t id = frame->hd.stream_id;
  if (self->streams_.size() >= self->max_streams_) {
    // No stream is made: its fields and DATA are dropped until the reset closes it.
    nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  static_assert(alignof(Http2Stream) <= alignof(std::max_align_t));
  io::BlockPool& pool = self->worker_.http2Blocks();
  void* block = pool.allocate(sizeof(Http2Stream));
  if (block == nullptr) return NGHTTP2_ERR_CALLBACK_FAILURE;
  const auto& limits = self->carrier_.runtime().config().limits;
  auto exchange =
      self->worker_.takeExchange(http::ParserLimits{limits.max_header_bytes, limits.max_headers});
  ++self->streams_opened_;
  StreamPtr stream(new (block) Http2Stream(*self, id, std::move(exchange)), StreamDeleter{&pool});
  self->streams_.emplace(self->slot(id), id, std::move(stream));
  return 0;
}

int Http2Session::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                           size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                           void* arg) {
  auto* self = static_cast<Http2Session*>(arg);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  Http2Stream* stream = self->stream(frame->hd.stream_id);
  // Trailers are read and dropped: HTTP/1 servers get the body chunked without them.
  if (stream == nullptr || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  stream->onHeader(std::string_view(reinterpret_cast<const char*>(name), namelen),
                   std::string_view(reinterpret_cast<const char*>(value), valuelen));
  return 0;
}

int Http2Session::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
  auto* self = static_cast<Http2Session*>(arg);
  bool idle = false;
  switch (frame->hd.type) {
    case NGHTTP2_PRIORITY:
      idle = true;
      break;
    case NGHTTP2_DATA:
      idle = frame->hd.length == 0 && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0;
      break;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
      idle = (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0;
      break;
  }
  if (idle && ++self->idle_frames_ > kIdleFrameAllowance + 4 * self->streams_opened_) {
    self->calm_ = true;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  Http2Stream* stream = self->stream(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->onHeadersEnd(end_stream);
  } else if (end_stream && (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
    stream->onEndStream();
  }
  return 0;
}

int Http2Session::onDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                              size_t len, void* arg) {
  auto* self = static_cast<Http2Session*>(arg);
  if (Http2Stream* stream = self->stream(stream_id)) {
    stream->onData(data, len);
  } else {
    nghttp2_session_consume(self->session_, stream_id, len);
  }
  return 0;
}

int Http2Session::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* arg) {
  auto* self = static_cast<Http2Session*>(arg);
  Http2Stream* stream = self->stream(stream_id);
  if (stream == nullptr) return 0;
  stream->onClosed();
  // Found again: the vector may have moved while the stream closed.
  auto at = self->slot(stream_id);
  if (at != self->streams_.end() && at->first == stream_id) self->streams_.erase(at);
  return 0;
}

int Http2Session::onSendData(nghttp2_session*, nghttp2_frame*, const uint8_t* header, size_t length,
                             nghttp2_data_source* source, void* arg) {
  auto* self = static_cast<Http2Session*>(arg);
  // mem_send goes on through every DATA frame it can: `out` is bounded here.
  if (evbuffer_get_length(self->sending_) >= self->sending_room_) return NGHTTP2_ERR_WOULDBLOCK;
  // No padding is asked for (no select_padding callback): header, then body.
  evbuffer_add(self->sending_, header, 9);
  static_cast<Http2Stream*>(source->ptr)->sendBody(self->sending_, length);
  return 0;
}

int Http2Session::onFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* arg) {
  if (frame->hd.type != NGHTTP2_GOAWAY) return 0;
  auto* self = static_cast<Http2Session*>(arg);
  observe::GoawayReason reason =
      frame->goaway.error_code == NGHTTP2_NO_ERROR            ? observe::GoawayReason::Shutdown
      : frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM ? observe::GoawayReason::Calm
                                                              : observe::GoawayReason::Protocol;
  self->carrier_.clientInfo().listener_metrics->goaways[static_cast<size_t>(reason)].add();
  return 0;
}

}  // namespace crest::proxy
