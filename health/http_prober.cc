#include "health/http_prober.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "health/dispatcher.h"

namespace crest::health {

// One probe in flight, listed in its prober's in_flight_ until it is deleted.
// It waits for writability only until the request is sent and for
// readability after that: a level-triggered write interest on a connected
// socket would wake the loop on every pass while the server thinks.
class HttpProbe {
 public:
  HttpProbe(event_base* base, const ProbeTarget& target, std::function<void(ProbeResult)> done,
            std::unordered_set<HttpProbe*>& in_flight)
      : base_(base), target_(target), done_(std::move(done)), in_flight_(in_flight) {
    in_flight_.insert(this);
    fd_ = ::socket(target.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    io_ = event_new(base, fd_, EV_WRITE | EV_PERSIST, &HttpProbe::onIo, this);
    timeout_ = evtimer_new(base, &HttpProbe::onTimeout, this);
    request_ = "GET " + target.check->path + " HTTP/1.1\r\nHost: " + target.host_header +
               "\r\nUser-Agent: crest-health-check\r\nConnection: close\r\n\r\n";
  }

  ~HttpProbe() {
    event_free(io_);
    event_free(timeout_);
    if (fd_ >= 0) ::close(fd_);
    in_flight_.erase(this);
  }
  HttpProbe(const HttpProbe&) = delete;
  HttpProbe& operator=(const HttpProbe&) = delete;

  void start() {
    if (fd_ < 0) {
      failLater(std::string("socket: ") + std::strerror(errno));
    } else if (::connect(fd_, reinterpret_cast<const sockaddr*>(&target_.address),
                         target_.address_length) != 0 &&
               errno != EINPROGRESS) {
      failLater(connectReason(errno));
    } else {
      timeval tv = toTimeval(target_.check->timeout);
      event_add(timeout_, &tv);
      event_add(io_, nullptr);
    }
  }

 private:
  static std::string connectReason(int err) {
    return err == ECONNREFUSED ? "connect refused"
                               : std::string("connect failed: ") + std::strerror(err);
  }

  static void onIo(evutil_socket_t, short, void* arg) { static_cast<HttpProbe*>(arg)->handle(); }

  static void onTimeout(evutil_socket_t, short, void* arg) {
    auto* probe = static_cast<HttpProbe*>(arg);
    if (!probe->early_failure_.empty()) return probe->finish(false, probe->early_failure_);
    probe->finish(false, "timeout " + conf::formatDuration(probe->target_.check->timeout));
  }

  // Immediate failures are reported from the loop too: `done` never runs
  // inside probe().
  void failLater(std::string reason) {
    early_failure_ = std::move(reason);
    event_active(timeout_, EV_TIMEOUT, 0);
  }

  void handle() {
    if (!connected_) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return finish(false, connectReason(err));
      connected_ = true;
    }
    if (sent_ < request_.size()) {
      ssize_t n = ::send(fd_, request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN)
        return finish(false, std::string("send: ") + std::strerror(errno));
      if (n > 0) sent_ += static_cast<size_t>(n);
      if (sent_ < request_.size()) return;
      event_del(io_);
      event_assign(io_, base_, fd_, EV_READ | EV_PERSIST, &HttpProbe::onIo, this);
      event_add(io_, nullptr);
    }
    char buf[512];
    while (true) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        response_.append(buf, static_cast<size_t>(n));
        size_t eol = response_.find("\r\n");
        if (eol != std::string::npos) return judge(response_.substr(0, eol));
        if (response_.size() > 1024) return finish(false, "invalid response");
        continue;
      }
      if (n == 0) return finish(false, "connection closed without a response");
      if (errno == EAGAIN) return;
      return finish(false, std::string("recv: ") + std::strerror(errno));
    }
  }

  void judge(const std::string& status_line) {
    int status = parseStatusLine(status_line);
    if (status == 0) return finish(false, "invalid response");
    finish(target_.check->expected_status.contains(status), "status " + std::to_string(status));
  }

  void finish(bool pass, std::string reason) {
    auto done = std::move(done_);
    ProbeResult result{pass, std::move(reason)};
    delete this;
    done(result);
  }

  event_base* base_;
  ProbeTarget target_;
  std::function<void(ProbeResult)> done_;
  std::unordered_set<HttpProbe*>& in_flight_;
  int fd_ = -1;
  event* io_ = nullptr;
  event* timeout_ = nullptr;
  bool connected_ = false;
  std::string request_;
  size_t sent_ = 0;
  std::string response_;
  std::string early_failure_;
};

int parseStatusLine(const std::string& line) {
  if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[8] != ' ') return 0;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return 0;
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return 0;
  return status >= 100 && status <= 599 ? status : 0;
}

HttpProber::~HttpProber() {
  while (!in_flight_.empty()) delete *in_flight_.begin();
}

void HttpProber::probe(const ProbeTarget& target, std::function<void(ProbeResult)> done) {
  (new HttpProbe(base_, target, std::move(done), in_flight_))->start();
}

}  // namespace crest::health
