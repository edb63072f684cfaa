package ch.ungleich.uncloud.hook;

/** Exit codes of the hook and the CLI, in one place (the README has the same table). */
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

  private ExitCodes() {}
}
