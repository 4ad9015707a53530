#include "limits/admission_queue.h"

#include <algorithm>

namespace crest::limits {

using State = AdmissionTicket::State;

AdmissionQueue::Entry AdmissionQueue::enter(const std::shared_ptr<AdmissionTicket>& ticket,
                                            Priority priority) {
  std::shared_ptr<AdmissionTicket> shed;
  {
    std::lock_guard lock(mu_);
    if (active_.load(std::memory_order_relaxed) < max_active_ && waiting_ == 0) {
      active_.fetch_add(1, std::memory_order_relaxed);
      return Entry::Admitted;
    }
    if (waiting_ >= queue_size_) {
      // The lowest class that has waiters gives up its newest, but only to a
      // more important newcomer.
      size_t lowest = queues_.size();
      while (lowest > 0 && queues_[lowest - 1].empty()) --lowest;
      if (lowest == 0 || lowest - 1 <= static_cast<size_t>(priority)) return Entry::Refused;
      shed = std::move(queues_[lowest - 1].back());
      queues_[lowest - 1].pop_back();
      shed->state_ = State::Shed;
      waiting_.fetch_sub(1, std::memory_order_relaxed);
    }
    ticket->state_ = State::Waiting;
    queues_[static_cast<size_t>(priority)].push_back(ticket);
    waiting_.fetch_add(1, std::memory_order_relaxed);
  }
  if (shed) shed->onDecided(State::Shed);
  return Entry::Queued;
}

void AdmissionQueue::leave() {
  std::shared_ptr<AdmissionTicket> next;
  {
    std::lock_guard lock(mu_);
    for (auto& q : queues_) {
      if (q.empty()) continue;
      next = std::move(q.front());
      q.pop_front();
      break;
    }
    if (!next) {
      active_.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    // The slot passes on without being freed: a newcomer cannot slip ahead.
    next->state_ = State::Granted;
    waiting_.fetch_sub(1, std::memory_order_relaxed);
  }
  next->onDecided(State::Granted);
}

State AdmissionQueue::withdraw(AdmissionTicket& ticket) {
  std::lock_guard lock(mu_);
  State was = ticket.state_;
  if (was == State::Waiting) {
    for (auto& q : queues_) {
      auto it = std::find_if(q.begin(), q.end(), [&](const auto& t) { return t.get() == &ticket; });
      if (it == q.end()) continue;
      q.erase(it);
      waiting_.fetch_sub(1, std::memory_order_relaxed);
      break;
    }
  }
  ticket.state_ = State::Withdrawn;
  return was;
}

}  // namespace crest::limits
