package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.config.ConfigFile;
import java.util.HashMap;
import java.util.Map;
import picocli.CommandLine.Option;

/**
 * Options every operator command shares (jbang's {@code FormatMixin} pattern): where libvirt is,
 * which configuration, and text or JSON output.
 */
public final class CommonOptions {
  /** Where every command connects unless told otherwise. */
  public static final String DEFAULT_URI = "qemu:///system";

  @Option(
      names = "--connect",
      paramLabel = "URI",
      description = "libvirt connection URI (default: ${DEFAULT-VALUE}).",
      defaultValue = DEFAULT_URI)
  String uri;

  @Option(names = "--json", description = "Print the result as JSON (shape documented in docs/cli.md).")
  boolean json;

  @Option(
      names = "--config-file",
      paramLabel = "FILE",
      description = "uncloud-hook configuration (default: $UNCLOUD_HOOK_CONFIG, else " + Config.DEFAULT_PATH + ").")
  String config;

  @Option(names = "--debug", description = "Print stack traces of failures.")
  boolean debug;

  public String uri() {
    return uri;
  }

  public boolean json() {
    return json;
  }

  /** The configuration file's path: {@code --config}, else the environment's, else the default. */
  public String configPath() {
    return config != null ? config : ConfigFile.path(System.getenv());
  }

  /** Whether the path was chosen on the command line. */
  public boolean configGiven() {
    return config != null;
  }

  /** Loads the configuration as the hook would (a missing file means the defaults). */
  public Config loadConfig() {
    return loadConfig(configPath());
  }

  public static Config loadConfig(String path) {
    Map<String, String> env = new HashMap<>(System.getenv());
    env.put(Config.ENV, path);
    return ConfigFile.load(env);
  }
}
