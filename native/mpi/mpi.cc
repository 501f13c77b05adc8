// Open MPI for Node (N-API through node-addon-api): init / finalize, rank / size, and the
// collectives data-parallel training needs on host buffers: barrier, broadcast, allgather and
// allreduce (sum) of float32 / float64 / byte arrays. Every collective runs on a libuv worker thread
// and returns a Promise, so the JS thread keeps queueing GPU work while MPI moves bytes (the
// overlap of PyTorch DDP's bucketed allreduce). The JS wrapper (cli/mpi.ts) issues one collective
// at a time, in the same order on every rank, as MPI requires; abort() ends the whole job (a
// timeout or an error on one rank must not leave the others waiting in a collective forever).
#include <dlfcn.h>
#include <mpi.h>
#include <napi.h>

#include <functional>
#include <string>
#include <vector>

namespace {

bool initialized = false;

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string(what) + ": " + std::string(msg, len));
}

void requireInit(Napi::Env env) {
  if (!initialized) throw Napi::Error::New(env, "mpi: init() was not called");
}

// A collective on a worker thread: `work` runs there (no JS access), the promise settles on the JS
// thread. `keep` holds the JS buffers alive until then.
class Collective : public Napi::AsyncWorker {
 public:
  Collective(Napi::Env env, std::function<void()> work, std::vector<Napi::Value> keep)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)) {
    for (auto& v : keep) refs_.push_back(Napi::Persistent(v));
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::vector<Napi::Reference<Napi::Value>> refs_;
};

Napi::Value start(Napi::Env env, std::function<void()> work, std::vector<Napi::Value> keep) {
  auto* w = new Collective(env, std::move(work), std::move(keep));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// The element type and count of a typed array argument.
struct Buf {
  void* data;
  int count;
  MPI_Datatype type;
};

Buf buffer(const Napi::Value& v, const char* fn) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), std::string("mpi.") + fn + ": expected a Float32Array, Float64Array or Uint8Array");
  auto a = v.As<Napi::TypedArray>();
  void* data = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  int n = static_cast<int>(a.ElementLength());
  switch (a.TypedArrayType()) {
    case napi_float32_array: return {data, n, MPI_FLOAT};
    case napi_float64_array: return {data, n, MPI_DOUBLE};
    case napi_uint8_array: return {data, n, MPI_BYTE};
    default: throw Napi::TypeError::New(v.Env(), std::string("mpi.") + fn + ": expected a Float32Array, Float64Array or Uint8Array");
  }
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!initialized) {
    // Open MPI loads its components with dlopen and they look up libmpi's symbols globally; Node
    // loads this addon (and so libmpi) RTLD_LOCAL, so promote libmpi first (as mpi4py does).
    if (!dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) dlopen("libmpi.so", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) throw Napi::Error::New(env, "mpi: MPI_Init_thread failed");
    if (provided < MPI_THREAD_SERIALIZED) throw Napi::Error::New(env, "mpi: this MPI library does not allow calls from a worker thread (MPI_THREAD_SERIALIZED)");
    // Errors come back as return codes (turned into rejected promises) rather than aborting at once.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    initialized = true;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  Napi::Object out = Napi::Object::New(env);
  out.Set("rank", rank);
  out.Set("size", size);
  out.Set("library", std::string(version, len));
  return out;
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  if (initialized) {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }
  return info.Env().Undefined();
}

Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  if (initialized) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  requireInit(info.Env());
  return start(info.Env(), [] { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }, {});
}

// broadcast(buffer, root): in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  requireInit(info.Env());
  Buf b = buffer(info[0], "broadcast");
  int root = info[1].As<Napi::Number>().Int32Value();
  return start(info.Env(), [b, root] { check(MPI_Bcast(b.data, b.count, b.type, root, MPI_COMM_WORLD), "MPI_Bcast"); }, {info[0]});
}

// allreduceSum(buffer): in place, the element-wise sum over ranks.
Napi::Value AllreduceSum(const Napi::CallbackInfo& info) {
  requireInit(info.Env());
  Buf b = buffer(info[0], "allreduceSum");
  if (b.type == MPI_BYTE) throw Napi::TypeError::New(info.Env(), "mpi.allreduceSum: expected a Float32Array or Float64Array");
  return start(info.Env(), [b] { check(MPI_Allreduce(MPI_IN_PLACE, b.data, b.count, b.type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce"); }, {info[0]});
}

// allgather(send, recv): recv (size x send's length, same type) gets every rank's send, rank order.
Napi::Value Allgather(const Napi::CallbackInfo& info) {
  requireInit(info.Env());
  Buf s = buffer(info[0], "allgather");
  Buf r = buffer(info[1], "allgather");
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (s.type != r.type || r.count != s.count * size) throw Napi::RangeError::New(info.Env(), "mpi.allgather: recv must have the send's type and size x its length");
  return start(info.Env(), [s, r] { check(MPI_Allgather(s.data, s.count, s.type, r.data, s.count, r.type, MPI_COMM_WORLD), "MPI_Allgather"); }, {info[0], info[1]});
}

// allgatherv(send: Uint8Array, recv: Uint8Array, counts: Int32Array): variable-length byte gather
// (the counts come from a prior allgather of the lengths).
Napi::Value Allgatherv(const Napi::CallbackInfo& info) {
  requireInit(info.Env());
  Buf s = buffer(info[0], "allgatherv");
  Buf r = buffer(info[1], "allgatherv");
  auto c = info[2].As<Napi::Int32Array>();
  std::vector<int> counts(c.Data(), c.Data() + c.ElementLength());
  std::vector<int> displs(counts.size(), 0);
  long total = 0;
  for (size_t i = 0; i < counts.size(); i++) {
    displs[i] = static_cast<int>(total);
    total += counts[i];
  }
  if (total != r.count) throw Napi::RangeError::New(info.Env(), "mpi.allgatherv: recv length is not the sum of the counts");
  return start(
      info.Env(),
      [s, r, counts, displs] { check(MPI_Allgatherv(s.data, s.count, MPI_BYTE, r.data, counts.data(), displs.data(), MPI_BYTE, MPI_COMM_WORLD), "MPI_Allgatherv"); },
      {info[0], info[1]});
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("allreduceSum", Napi::Function::New(env, AllreduceSum));
  exports.Set("allgather", Napi::Function::New(env, Allgather));
  exports.Set("allgatherv", Napi::Function::New(env, Allgatherv));
  return exports;
}

}  // namespace

NODE_API_MODULE(mpi_addon, Module)
