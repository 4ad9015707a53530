#include "limits/admission_queue.h"

#include <algorithm>

namespace crest::limits {

using State = AdmissionTicket::State;

bool AdmissionQueue::slotFree(Priority priority) const {
  uint32_t active = active_.load(std::memory_order_relaxed);
  if (active >= max_active_) return false;
  return priority == Priority::High ||
         active - high_active_.load(std::memory_order_relaxed) < max_active_ - reserved_high_;
}

void AdmissionQueue::take(Priority priority) {
  active_.fetch_add(1, std::memory_order_relaxed);
  if (priority == Priority::High) high_active_.fetch_add(1, std::memory_order_relaxed);
}

uint32_t AdmissionQueue::reservedInUse() const {
  return std::min(high_active_.load(std::memory_order_relaxed), reserved_high_);
}

AdmissionQueue::Entry AdmissionQueue::enter(const std::shared_ptr<AdmissionTicket>& ticket,
                                            Priority priority) {
  std::shared_ptr<AdmissionTicket> shed;
  {
    std::lock_guard lock(mu_);
    // Nobody overtakes a waiting request of its class or above. Others wait
    // while slots are free only when their share is used up, and then a
    // high-priority newcomer may take a reserved slot past them.
    bool ahead = priority == Priority::High ? !queues_[static_cast<size_t>(Priority::High)].empty()
                                            : waiting_ != 0;
    if (!ahead && slotFree(priority)) {
      take(priority);
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

void AdmissionQueue::leave(Priority priority) {
  std::shared_ptr<AdmissionTicket> next;
  {
    std::lock_guard lock(mu_);
    active_.fetch_sub(1, std::memory_order_relaxed);
    if (priority == Priority::High) high_active_.fetch_sub(1, std::memory_order_relaxed);
    // The slot goes to the first waiter that may hold it, under the same
    // lock: a newcomer cannot slip ahead.
    for (size_t p = 0; p < queues_.size(); ++p) {
      auto& q = queues_[p];
      if (q.empty() || !slotFree(static_cast<Priority>(p))) continue;
      next = std::move(q.front());
      q.pop_front();
      take(static_cast<Priority>(p));
      next->state_ = State::Granted;
      waiting_.fetch_sub(1, std::memory_order_relaxed);
      break;
    }
  }
  if (next) next->onDecided(State::Granted);
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
