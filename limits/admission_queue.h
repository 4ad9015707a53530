#pragma once
// Admission control for one pool: at most `max_active` requests in flight
// across all workers; the rest wait in a queue ordered by priority (high,
// normal, low; first come first served within a class). When the queue is
// full, the newest waiting request of the lowest class goes first: a newcomer
// of a higher class takes its place, anyone else is refused. `reserved_high`
// of the slots are kept for high-priority requests: normal and low ones never
// hold more than `max_active - reserved_high`, so a high-priority request
// finds a slot at once while fewer than `reserved_high` of its class are in
// flight, however many others wait (assured concurrency, as Kubernetes' API
// Priority and Fairness gives each level). High-priority requests count
// against the reserved slots first. Thread-safe; the lock guards the waiting
// lists and counts and is never held while a waiter is told its fate.
// Timeouts belong to the caller (withdraw when its timer fires).

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

namespace crest::limits {

enum class Priority { High = 0, Normal = 1, Low = 2 };

// A request waiting for a slot. The queue keeps a reference while it waits.
class AdmissionTicket {
 public:
  enum class State { Idle, Waiting, Granted, Shed, Withdrawn };
  virtual ~AdmissionTicket() = default;
  // Called once, on the thread that decided and outside the queue's lock,
  // when the ticket leaves the queue other than by withdraw(): it then holds
  // a slot (Granted) or was pushed out by a more important request (Shed).
  virtual void onDecided(State state) = 0;

 private:
  friend class AdmissionQueue;
  State state_ = State::Idle;  // guarded by the queue's lock
};

class AdmissionQueue {
 public:
  enum class Entry { Admitted, Queued, Refused };

  // `reserved_high` < `max_active` (the configuration checks it).
  AdmissionQueue(uint32_t max_active, uint32_t queue_size, uint32_t reserved_high = 0)
      : max_active_(max_active), queue_size_(queue_size), reserved_high_(reserved_high) {}

  // Takes a slot when one is free for `priority`, else queues `ticket`;
  // Refused when the queue is full of requests at least as important.
  Entry enter(const std::shared_ptr<AdmissionTicket>& ticket, Priority priority);
  // Gives back a slot taken for `priority`; the first waiting ticket that
  // may hold it takes it over.
  void leave(Priority priority);
  // Takes `ticket` out of the queue (its client left, or it waited too long)
  // and returns the state it had: Waiting (now withdrawn, no slot), Granted
  // (the caller holds a slot and owns giving it back) or Shed.
  AdmissionTicket::State withdraw(AdmissionTicket& ticket);

  uint32_t maxActive() const { return max_active_; }
  uint32_t queueSize() const { return queue_size_; }
  uint32_t reservedHigh() const { return reserved_high_; }
  uint32_t active() const { return active_.load(std::memory_order_relaxed); }
  uint32_t waiting() const { return waiting_.load(std::memory_order_relaxed); }
  // Reserved slots held by high-priority requests (they fill those first).
  uint32_t reservedInUse() const;

 private:
  // Whether a slot is free for `priority`. Under mu_.
  bool slotFree(Priority priority) const;
  // Counts a slot taken for `priority`. Under mu_.
  void take(Priority priority);

  const uint32_t max_active_;
  const uint32_t queue_size_;
  const uint32_t reserved_high_;
  std::mutex mu_;
  std::array<std::deque<std::shared_ptr<AdmissionTicket>>, 3> queues_;  // by Priority
  // Written under mu_, read without it (metrics, tests).
  std::atomic<uint32_t> active_{0};
  std::atomic<uint32_t> high_active_{0};  // of active_, the slots high-priority requests hold
  std::atomic<uint32_t> waiting_{0};
};

}  // namespace crest::limits
