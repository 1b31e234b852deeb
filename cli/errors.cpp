#include "cli/errors.h"

#include <iostream>
#include <new>

#include "cli/command.h"
#include "configs/config.h"
#include "datasets/data_error.h"
#include "engine/graph/model.h"
#include "engine/tensor/storage.h"
#include "exporters/onnx_export.h"

namespace dl::cli {

int run_guarded(const std::function<int()>& fn) {
  try {
    return fn();
  } catch (const ConfigError& e) {
    std::cerr << e.what() << "\n";
    return kExitUsage;
  } catch (const GraphError& e) {  // the model does not fit the data: a config problem
    std::cerr << "error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const onnx_export::ExportError& e) {  // the model or flags cannot be exported as asked
    std::cerr << "error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const CLI::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const DataError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  } catch (const OutOfMemoryError& e) {  // names the tensor and what it was for (layer, file)
    std::cerr << "error: " << e.what()
              << " (free memory, lower data.loader.batch_size or make the model smaller)\n";
    return kExitFailure;
  } catch (const std::bad_alloc& e) {  // not from a tensor allocation
    std::cerr << "error: out of memory (" << e.what() << ")\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace dl::cli
