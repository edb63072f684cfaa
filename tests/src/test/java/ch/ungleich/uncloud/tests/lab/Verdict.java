package ch.ungleich.uncloud.tests.lab;

/** What happened to one sent frame at the observer. */
public enum Verdict {
  /** the exact bytes arrived at the observer's port */
  DELIVERED,
  /** the bytes never arrived (while the batch's end frame, sent after it, did) */
  DROPPED
}
