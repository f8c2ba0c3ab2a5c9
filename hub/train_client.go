package hub

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	veilv1 "veil/proto/veil/v1"
)

// TrainRequest converts a spec to its wire form.
func (s TrainSpec) TrainRequest() *veilv1.TrainRequest {
	return &veilv1.TrainRequest{
		Name: s.Name, LabelParty: s.LabelParty, Parties: s.Parties, LabelOnly: s.LabelOnly,
		Epochs: int64(s.Epochs), BatchSize: int64(s.BatchSize), LearningRate: s.LearningRate, L2: s.L2, Decay: s.Decay,
		Tol: s.Tol, Patience: int64(s.Patience), TestFraction: s.TestFraction, Seed: s.Seed, PsiProtocol: s.PSIProtocol,
		AlignJobId: s.AlignJob,
	}
}

// TrainRemote runs a training job on the platform at conn (the operator's
// connection) and returns the registered model. progress, if set, sees
// every progress event. Errors keep their gRPC status.
func TrainRemote(ctx context.Context, conn grpc.ClientConnInterface, spec TrainSpec, progress func(Progress)) (*Model, error) {
	stream, err := veilv1.NewTrainingClient(conn).Train(ctx, spec.TrainRequest())
	if err != nil {
		return nil, err
	}
	var model *Model
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if model == nil {
				return nil, status.Error(codes.Internal, "train: the platform ended the stream without a model")
			}
			return model, nil
		}
		if err != nil {
			return model, err
		}
		switch b := ev.Body.(type) {
		case *veilv1.TrainEvent_Progress:
			if progress != nil {
				pr := b.Progress
				progress(Progress{Phase: pr.GetPhase(), Iteration: int(pr.GetIteration()), Iterations: int(pr.GetIterations()),
					Loss: pr.GetLoss(), Elapsed: time.Duration(pr.GetElapsedSeconds() * float64(time.Second)), Message: pr.GetMessage()})
			}
		case *veilv1.TrainEvent_Model:
			if model, err = ModelFromRecord(b.Model); err != nil {
				return nil, err
			}
		}
	}
}
