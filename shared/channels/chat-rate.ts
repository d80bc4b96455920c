// How often one person may speak in the chat room (steps 13 and 21): CHAT_RATE messages in 10 seconds, counted for
// the user however many sessions they have open. Counted for each session, it let one user with 10 connections of
// 10 sessions each say 100 times as much. (Step 21 counts on each machine: a fleet of N machines lets N times that.)
// Arriving is counted too, apart: each arrival is announced to everyone (and, in step 21, asks the store who is
// here), and sessions opened and closed in a loop sent another user 41,524 "joined" and "left" lines in 30 s.
import { limits } from '../core/options.ts';

/** The time over which CHAT_RATE counts, in milliseconds. */
const PER_MS = 10_000;
/** When each user said their last lines, and when they last arrived, CHAT_RATE at most: the users are those the password file lists. */
const said = new Map<string, number[]>();
const arrived = new Map<string, number[]>();

/** Whether `user` has done something fewer than CHAT_RATE times in the last 10 seconds, by `times`; if so, it is counted. */
function withinRate(times: Map<string, number[]>, user: string): boolean {
  const now = Date.now();
  const recent = times.get(user) ?? [];
  while (recent.length && now - recent[0]! > PER_MS) recent.shift();
  if (recent.length >= limits.chatRate) return false;
  recent.push(now);
  times.set(user, recent);
  return true;
}

/** Whether `user` may say one more line now, in any of their sessions; if so, that line is counted. */
export function maySay(user: string): boolean {
  return withinRate(said, user);
}

/** Whether `user` may join the room once more now (CHAT_RATE arrivals in 10 seconds); if so, this one is counted. */
export function mayArrive(user: string): boolean {
  return withinRate(arrived, user);
}
