package ch.ungleich.uncloud.hook;

/** Exit codes of the hook and the CLI, in one place (the README has the same table, "Exit codes"). */
public final class ExitCodes {
  /** Done. */
  public static final int OK = 0;
  /** Invalid input: metadata, domain XML or configuration; nothing was changed. */
  public static final int INVALID = 1;
  /** Wrong command line. */
  public static final int USAGE = 2;
  /** nft (or libvirt, for CLI commands) refused or failed; nothing was changed (transactions are atomic). */
  public static final int APPLY_FAILED = 3;
  /** Another uncloud-hook held the host lock for longer than lock_timeout. */
  public static final int LOCKED = 4;
  /** {@code source = etcd}: no etcd endpoint answered; nothing was changed. */
  public static final int SOURCE_UNAVAILABLE = 5;

  /** {@code doctor}: every check passed is {@link #OK}; this means warnings and no failure. */
  public static final int DOCTOR_WARNINGS = 1;
  /** {@code doctor}: at least one check failed. */
  public static final int DOCTOR_FAILURES = 2;

  private ExitCodes() {}
}
