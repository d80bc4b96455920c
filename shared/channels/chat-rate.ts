// How often one person may speak in the chat room (steps 13 and 21): CHAT_RATE messages in 10 seconds, counted for
// the user however many sessions they have open. Counted for each session, it let one user with 10 connections of
// 10 sessions each say 100 times as much. (Step 21 counts on each machine: a fleet of N machines lets N times that.)
import { limits } from '../core/options.ts';

/** The time over which CHAT_RATE counts, in milliseconds. */
const PER_MS = 10_000;
/** When each user said their last lines, CHAT_RATE at most: the users are those the password file lists. */
const said = new Map<string, number[]>();

/** Whether `user` may say one more line now, in any of their sessions; if so, that line is counted. */
export function maySay(user: string): boolean {
  const now = Date.now();
  const recent = said.get(user) ?? [];
  while (recent.length && now - recent[0]! > PER_MS) recent.shift();
  if (recent.length >= limits.chatRate) return false;
  recent.push(now);
  said.set(user, recent);
  return true;
}
