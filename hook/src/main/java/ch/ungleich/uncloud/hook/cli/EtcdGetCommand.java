package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.source.AddressSource;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code uncloud-hook etcd get DOMAIN}. */
@Command(
    name = "get",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = "Prints the domain's etcd key and value and whether the hook accepts it.",
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
      "0:shown (also when there is no key: unlisted applies)",
      "1:shown, but the value is invalid: the hook refuses to start the domain",
      "2:wrong command line",
      "3:libvirt could not be asked, or no such domain",
      "5:no etcd endpoint answered"
    })
final class EtcdGetCommand implements Callable<Integer> {
  @Mixin CommonOptions common;

  @Parameters(index = "0", paramLabel = "DOMAIN", description = "Name or UUID.")
  String domain;

  @Spec CommandSpec spec;

  /**
   * The {@code --json} shape.
   *
   * @param value the value as stored, null when there is no key
   * @param interfaces what a valid value says per NIC (empty for a missing or invalid one)
   * @param error why the hook refuses the value, else null
   */
  record Result(String domain, String uuid, String key, String value, List<EtcdCommand.Nic> interfaces, String error) {}

  @Override
  public Integer call() {
    Config cfg = common.loadConfig();
    Domain d = EtcdCommand.domain(common.uri(), domain);
    String key = AddressSource.key(d, cfg);
    String value = EtcdCommand.client(cfg).get(key);
    List<EtcdCommand.Nic> nics = List.of();
    String error = null;
    if (value != null) {
      try {
        nics = EtcdCommand.validate(value, d, key, cfg);
      } catch (UncloudException e) {
        error = e.getMessage();
      }
    }
    Result r = new Result(d.name, d.uuid, key, value, nics, error);
    PrintWriter out = spec.commandLine().getOut();
    if (common.json()) {
      Json.print(out, r);
    } else {
      out.println("# " + key);
      out.println(value == null ? "(no key: every NIC gets unlisted = " + cfg.unlisted() + ")" : value.strip());
      out.flush();
    }
    if (error != null) {
      spec.commandLine().getErr().println("uncloud-hook: invalid value: " + error);
      return ExitCodes.INVALID;
    }
    return ExitCodes.OK;
  }
}
