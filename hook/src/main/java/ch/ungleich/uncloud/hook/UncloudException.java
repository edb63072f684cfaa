package ch.ungleich.uncloud.hook;

/**
 * The one failure type of the program: a one-line message for the operator and the exit code it
 * maps to. Thrown by the core, turned into {@code uncloud-hook: <message>} on stderr and the exit
 * code by {@code HookMain} and the CLI; a stack trace is printed only with {@code --debug}.
 */
public class UncloudException extends RuntimeException {
  private final int exitCode;

  public UncloudException(int exitCode, String message) {
    super(message);
    this.exitCode = exitCode;
  }

  public UncloudException(int exitCode, String message, Throwable cause) {
    super(message, cause);
    this.exitCode = exitCode;
  }

  public int exitCode() {
    return exitCode;
  }

  /** Invalid input: metadata, configuration or domain XML. */
  public static UncloudException invalid(String message) {
    return new UncloudException(ExitCodes.INVALID, message);
  }
}
