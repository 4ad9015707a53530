#include "limits/admission_queue.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using crest::limits::AdmissionQueue;
using crest::limits::AdmissionTicket;
using crest::limits::Priority;
using State = AdmissionTicket::State;
using Entry = AdmissionQueue::Entry;

namespace {

// Records the order in which tickets were decided.
struct Ticket : AdmissionTicket {
  Ticket(std::string n, std::vector<std::string>& l) : name(std::move(n)), log(l) {}
  void onDecided(State state) override {
    log.push_back(name + (state == State::Granted ? " granted" : " shed"));
  }
  std::string name;
  std::vector<std::string>& log;
};

struct Fixture {
  std::vector<std::string> log;
  std::shared_ptr<Ticket> ticket(const std::string& name) {
    return std::make_shared<Ticket>(name, log);
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "requests are admitted up to max_active, then queue") {
  AdmissionQueue queue(2, 10);
  CHECK(queue.enter(ticket("a"), Priority::Normal) == Entry::Admitted);
  CHECK(queue.enter(ticket("b"), Priority::Normal) == Entry::Admitted);
  auto c = ticket("c");
  CHECK(queue.enter(c, Priority::Normal) == Entry::Queued);
  CHECK(queue.active() == 2);
  CHECK(queue.waiting() == 1);
  queue.leave(Priority::Normal);
  CHECK(log == std::vector<std::string>{"c granted"});
  CHECK(queue.active() == 2);  // the slot passed to c
  CHECK(queue.waiting() == 0);
  queue.leave(Priority::Normal);
  queue.leave(Priority::Normal);
  CHECK(queue.active() == 0);
}

TEST_CASE_METHOD(Fixture, "high before normal before low, first come first served within a class") {
  AdmissionQueue queue(1, 10);
  REQUIRE(queue.enter(ticket("busy"), Priority::Normal) == Entry::Admitted);
  queue.enter(ticket("low1"), Priority::Low);
  queue.enter(ticket("normal1"), Priority::Normal);
  queue.enter(ticket("high1"), Priority::High);
  queue.enter(ticket("normal2"), Priority::Normal);
  queue.enter(ticket("high2"), Priority::High);
  // Each slot is given back for the class of the request that held it.
  for (auto held :
       {Priority::Normal, Priority::High, Priority::High, Priority::Normal, Priority::Normal})
    queue.leave(held);
  CHECK(log == std::vector<std::string>{"high1 granted", "high2 granted", "normal1 granted",
                                        "normal2 granted", "low1 granted"});
}

TEST_CASE_METHOD(Fixture,
                 "a full queue sheds the newest of the lowest class for a more important request") {
  AdmissionQueue queue(1, 3);
  REQUIRE(queue.enter(ticket("busy"), Priority::Normal) == Entry::Admitted);
  queue.enter(ticket("low1"), Priority::Low);
  queue.enter(ticket("low2"), Priority::Low);
  queue.enter(ticket("normal1"), Priority::Normal);
  // Full. Another low one is refused outright: it is the newest of the lowest class.
  CHECK(queue.enter(ticket("low3"), Priority::Low) == Entry::Refused);
  // A normal one pushes out low2 (the newest low).
  CHECK(queue.enter(ticket("normal2"), Priority::Normal) == Entry::Queued);
  CHECK(log == std::vector<std::string>{"low2 shed"});
  // A high one pushes out low1; then a normal newcomer is refused (only normal and high wait).
  CHECK(queue.enter(ticket("high1"), Priority::High) == Entry::Queued);
  CHECK(queue.enter(ticket("normal3"), Priority::Normal) == Entry::Refused);
  CHECK(queue.waiting() == 3);
  log.clear();
  for (auto held : {Priority::Normal, Priority::High, Priority::Normal}) queue.leave(held);
  CHECK(log == std::vector<std::string>{"high1 granted", "normal1 granted", "normal2 granted"});
}

TEST_CASE_METHOD(Fixture, "without a queue, requests beyond max_active are refused") {
  AdmissionQueue queue(1, 0);
  REQUIRE(queue.enter(ticket("a"), Priority::High) == Entry::Admitted);
  CHECK(queue.enter(ticket("b"), Priority::High) == Entry::Refused);
}

TEST_CASE_METHOD(Fixture, "a withdrawn ticket leaves the queue at once and is never granted") {
  AdmissionQueue queue(1, 10);
  REQUIRE(queue.enter(ticket("busy"), Priority::Normal) == Entry::Admitted);
  auto gone = ticket("gone");
  auto next = ticket("next");
  queue.enter(gone, Priority::Normal);
  queue.enter(next, Priority::Normal);
  CHECK(queue.withdraw(*gone) == State::Waiting);
  CHECK(queue.waiting() == 1);
  queue.leave(Priority::Normal);
  CHECK(log == std::vector<std::string>{"next granted"});
}

TEST_CASE_METHOD(Fixture, "withdrawing a granted ticket tells the caller it holds a slot") {
  AdmissionQueue queue(1, 10);
  REQUIRE(queue.enter(ticket("busy"), Priority::Normal) == Entry::Admitted);
  auto t = ticket("t");
  queue.enter(t, Priority::Normal);
  queue.leave(Priority::Normal);
  CHECK(queue.withdraw(*t) == State::Granted);
  CHECK(queue.active() == 1);
  queue.leave(Priority::Normal);
  CHECK(queue.active() == 0);
}

TEST_CASE_METHOD(Fixture, "a newcomer never overtakes waiting requests") {
  AdmissionQueue queue(1, 10);
  REQUIRE(queue.enter(ticket("busy"), Priority::Normal) == Entry::Admitted);
  queue.enter(ticket("waiting"), Priority::Low);
  queue.leave(Priority::Normal);  // the slot goes to "waiting"
  CHECK(queue.enter(ticket("new"), Priority::High) == Entry::Queued);
}

TEST_CASE_METHOD(Fixture, "reserved slots: others never hold more than their share") {
  AdmissionQueue queue(4, 10, 2);
  CHECK(queue.enter(ticket("n1"), Priority::Normal) == Entry::Admitted);
  CHECK(queue.enter(ticket("l1"), Priority::Low) == Entry::Admitted);
  // Two slots free, both reserved: normal and low wait.
  auto n2 = ticket("n2");
  CHECK(queue.enter(n2, Priority::Normal) == Entry::Queued);
  CHECK(queue.enter(ticket("l2"), Priority::Low) == Entry::Queued);
  CHECK(queue.active() == 2);
  // A high-priority request goes past them into a reserved slot, at once.
  CHECK(queue.enter(ticket("h1"), Priority::High) == Entry::Admitted);
  CHECK(queue.reservedInUse() == 1);
  CHECK(queue.enter(ticket("h2"), Priority::High) == Entry::Admitted);
  CHECK(queue.reservedInUse() == 2);
  CHECK(queue.active() == 4);
  // Full: the next high one waits, ahead of the others.
  CHECK(queue.enter(ticket("h3"), Priority::High) == Entry::Queued);
  // A high slot given back goes to the waiting high request, not to n2.
  queue.leave(Priority::High);
  CHECK(log == std::vector<std::string>{"h3 granted"});
  // The next high slot given back stays free: n2 would exceed the share.
  queue.leave(Priority::High);
  CHECK(log.size() == 1);
  CHECK(queue.active() == 3);
  // A normal slot given back goes to n2, the share being 2.
  queue.leave(Priority::Normal);
  CHECK(log == std::vector<std::string>{"h3 granted", "n2 granted"});
  CHECK(queue.active() == 3);
  CHECK(queue.reservedInUse() == 1);
}

TEST_CASE_METHOD(Fixture, "reserved slots: high-priority requests use the shared ones too") {
  AdmissionQueue queue(3, 10, 1);
  for (const char* name : {"h1", "h2", "h3"})
    CHECK(queue.enter(ticket(name), Priority::High) == Entry::Admitted);
  CHECK(queue.reservedInUse() == 1);
  CHECK(queue.enter(ticket("n1"), Priority::Normal) == Entry::Queued);
  queue.leave(Priority::High);
  CHECK(log == std::vector<std::string>{"n1 granted"});  // 1 normal of a share of 2
}

TEST_CASE_METHOD(Fixture, "without reserved slots a high-priority request waits like any other") {
  AdmissionQueue queue(2, 10, 0);
  CHECK(queue.enter(ticket("n1"), Priority::Normal) == Entry::Admitted);
  CHECK(queue.enter(ticket("n2"), Priority::Normal) == Entry::Admitted);
  CHECK(queue.enter(ticket("h1"), Priority::High) == Entry::Queued);
  CHECK(queue.reservedInUse() == 0);
}
